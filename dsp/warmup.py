"""Compile (first run) or load from numba's on-disk cache every feature kernel before live audio.

Each public entry point is called once on a tiny input per accepted sample type, so every
specialisation the server will use exists before the first live turn.
"""

from __future__ import annotations

import time

import numpy as np

from dsp import features, kernels
from dsp.analytics import UtteranceAnalytics
from dsp.polyphase import PolyphaseResampler
from dsp.streaming import StreamingFeatures, feature_frames


def warmup() -> float:
    """Compile/load all dsp feature kernels; returns the seconds it took."""
    started = time.perf_counter()
    tone = np.sin(np.arange(1200) * 0.1) * 0.1
    for y in (tone.astype(np.float32), tone, (tone * 32767).astype(np.int16)):
        mel = features.melspectrogram(y=y, sr=16000, n_fft=512, hop_length=160, n_mels=40)
        features.melspectrogram(S=np.ones((257, 2), mel.dtype), sr=16000, n_fft=512, n_mels=40)
        features.mfcc(S=features.power_to_db(mel, top_db=None), n_mfcc=13)
        features.rms(y=y, frame_length=512, hop_length=160)
        features.zero_crossing_rate(y, frame_length=512, hop_length=160)
        features.spectral_entropy(y=y, n_fft=512, hop_length=160)
        features.energy_envelope(y=y, sr=16000, n_fft=512, hop_length=160)
        stream = StreamingFeatures()
        analytics = UtteranceAnalytics()
        for n in (600, 160, 320):  # 1 frame (a C-contiguous block), 1, then 2 (Fortran-ordered): both layouts
            analytics.add(stream.push(y[:n]))
        analytics.add(feature_frames(y))
        analytics.summary()
    features.melspectrogram(y=tone, sr=16000, n_fft=512, hop_length=160, n_mels=40, power=1.0)
    kernels.check_finite(np.zeros(1, np.float32))
    for rate in (8000, 24000, 48000):  # the input rates clients send, to the 16 kHz pipeline
        PolyphaseResampler(rate, 16000).process(np.zeros(480, np.int16))
        # and as the session decodes audio/pcm: np.frombuffer of the payload is read-only, another numba type
        PolyphaseResampler(rate, 16000).process(np.frombuffer(bytes(960), dtype="<i2"))
    return time.perf_counter() - started
