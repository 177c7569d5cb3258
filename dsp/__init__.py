"""Signal processing: resampling, VAD, codecs and numba features. Imports nothing of ours."""

from dsp.opus import OPUS_FRAME_SAMPLES, OPUS_RATE, OpusDecoder, OpusEncoder, OpusError
from dsp.resample import StreamResampler, resample
from dsp.vad import FRAME_SAMPLES, WebRtcVad

__all__ = [
    "FRAME_SAMPLES",
    "OPUS_FRAME_SAMPLES",
    "OPUS_RATE",
    "OpusDecoder",
    "OpusEncoder",
    "OpusError",
    "StreamResampler",
    "WebRtcVad",
    "resample",
]
