"""Signal processing: resampling, VAD, codecs and numba features. Imports nothing of ours."""

from dsp.analytics import AudioAnalytics, UtteranceAnalytics
from dsp.features import (
    energy_envelope,
    melspectrogram,
    mfcc,
    power_to_db,
    rms,
    spectral_entropy,
    zero_crossing_rate,
)
from dsp.opus import OPUS_FRAME_SAMPLES, OPUS_RATE, OpusDecoder, OpusEncoder, OpusError
from dsp.polyphase import PolyphaseResampler
from dsp.resample import StreamResampler, resample
from dsp.streaming import (
    FeatureConfig,
    FeatureFrames,
    StreamingFeatures,
    feature_frames,
)
from dsp.vad import FRAME_SAMPLES, WebRtcVad
from dsp.warmup import warmup

__all__ = [
    "FRAME_SAMPLES",
    "OPUS_FRAME_SAMPLES",
    "OPUS_RATE",
    "AudioAnalytics",
    "FeatureConfig",
    "FeatureFrames",
    "OpusDecoder",
    "OpusEncoder",
    "OpusError",
    "StreamResampler",
    "StreamingFeatures",
    "UtteranceAnalytics",
    "WebRtcVad",
    "energy_envelope",
    "feature_frames",
    "melspectrogram",
    "mfcc",
    "power_to_db",
    "resample",
    "PolyphaseResampler",
    "rms",
    "spectral_entropy",
    "warmup",
    "zero_crossing_rate",
]
