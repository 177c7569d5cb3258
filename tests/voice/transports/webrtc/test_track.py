"""voice/transports/webrtc/track.py: the outbound track paces 20 ms frames, reports playback and flushes;
inbound frames are mixed to mono."""

from __future__ import annotations

from fractions import Fraction

import av
import numpy as np

from voice.transports.webrtc.track import FRAME_SAMPLES, AgentAudioTrack, frame_to_mono


async def test_agent_track_paces_frames_and_reports_playback():
    seen: list[tuple[str, str | None]] = []
    track = AgentAudioTrack(lambda kind, rid: seen.append((kind, rid)))
    track.enqueue("resp_1", np.full(FRAME_SAMPLES + FRAME_SAMPLES // 2, 1000, np.int16))
    track.finish("resp_1")
    frames = [await track.recv() for _ in range(3)]
    assert [f.pts for f in frames] == [0, 960, 1920]
    assert all(f.samples == 960 and f.sample_rate == 48000 and f.time_base == Fraction(1, 48000) for f in frames)
    assert all(f.layout.name == "mono" and f.format.name == "s16" for f in frames)
    pcm = [frame_to_mono(f) for f in frames]
    assert (pcm[0] == 1000).all() and (pcm[1][:480] == 1000).all() and not pcm[1][480:].any()
    assert not pcm[2].any()  # idle: silence
    assert seen == [("output_audio_buffer.started", "resp_1"), ("output_audio_buffer.stopped", "resp_1")]
    track.stop()


async def test_agent_track_flush_drops_everything_queued():
    track = AgentAudioTrack()
    track.enqueue("resp_2", np.full(FRAME_SAMPLES * 50, 1000, np.int16))
    assert (frame_to_mono(await track.recv()) == 1000).all()
    assert track.flush() == "resp_2"
    assert track.queued_samples == 0
    assert not frame_to_mono(await track.recv()).any()
    assert track.flush() is None  # nothing left to clear
    track.stop()


def test_frame_to_mono_mixes_packed_stereo():
    packed = np.array([[100, 300, -200, -400]], dtype=np.int16)
    frame = av.AudioFrame.from_ndarray(packed, format="s16", layout="stereo")
    frame.sample_rate = 48000
    assert frame_to_mono(frame).tolist() == [200, -300]
