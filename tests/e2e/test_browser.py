"""The web page in a real Chromium (Debian's, driven by Playwright), with a WAV file as its microphone.

WebRTC needs a routable address (aiortc offers no loopback candidates), so that test runs the server and the
browser in a network namespace it creates; the WebSocket mode and the denied-microphone check run on loopback.
Screenshots land in artifacts/ (git-ignored).
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import jiwer
import numpy as np
import pytest
import soundfile as sf

from dsp import resample
from tests.e2e.webrtc.harness import PYTHON, run_result, say
from tests.e2e.webrtc.netns import NetnsUnavailable, netns_exec, network_namespace
from tests.e2e.webrtc.run_browser import CHROMIUM
from tests.helpers import ROOT, speech, transcripts

ARTIFACTS = ROOT / "artifacts"


@pytest.fixture(scope="module")
def chromium():
    if shutil.which(CHROMIUM) is None:
        reason = f"browser tests skipped: {CHROMIUM} is not installed (apt-get install chromium)"
        say(reason)
        pytest.skip(reason)
    ARTIFACTS.mkdir(exist_ok=True)
    return CHROMIUM


@pytest.fixture(scope="module")
def microphone_wav(tmp_path_factory) -> Path:
    """goforward.wav as Chromium's fake microphone: 48 kHz mono 16-bit, half a second of silence before and
    eight after, so the agent has answered before the file loops round."""
    pcm, rate = speech("goforward.wav")
    pcm48 = resample(pcm, rate, 48000)
    path = tmp_path_factory.mktemp("mic") / "goforward-48k.wav"
    sf.write(path, np.concatenate([np.zeros(24000, np.int16), pcm48, np.zeros(48000 * 8, np.int16)]), 48000,
             subtype="PCM_16")
    return path


def normalise(text: str) -> str:
    return " ".join(re.sub(r"[^a-z' ]", " ", text.lower()).split())


def check_conversation(out: dict, shot: Path) -> None:
    assert "error" not in out, f"{out.get('error')}\n{out.get('traceback', '')}\nconsole: {out.get('console')}"
    assert out["title"] == "SomaGent Voice"
    assert out["user_transcripts"], out
    # The file loops: the first final line is the first pass through it.
    reference = transcripts()["goforward.wav"]
    assert jiwer.wer(reference, normalise(out["user_transcripts"][0])) <= 0.5, out["user_transcripts"]
    assert out["agent_transcripts"] and "heard" in out["agent_transcripts"][0].lower()
    assert out["agent_heard"] and out["output_level"] > 0.01  # the agent's voice reached the page's audio graph
    assert out["turn_latency"] and re.fullmatch(r"\d+ ms", out["turn_latency"][0])
    assert out["sessions_before_hangup"] == 1
    assert out["status_after_hangup"] == "Call ended"
    assert out["sessions_after_hangup"] == 0 and out["calls_after_hangup"] == 0
    assert not [c for c in out["console"] if c.startswith("pageerror")], out["console"]
    assert shot.is_file() and shot.stat().st_size > 10_000


def test_browser_webrtc_call(chromium, microphone_wav):
    shot = ARTIFACTS / "browser-webrtc.png"
    shot.unlink(missing_ok=True)
    try:
        with network_namespace() as (ns, address):
            out = run_result(netns_exec(ns) + [PYTHON, "-m", "tests.e2e.webrtc.run_browser", "--host", address,
                                               "--wav", str(microphone_wav), "--shot", str(shot)], timeout=240)
    except NetnsUnavailable as exc:
        reason = f"browser WebRTC test skipped: aiortc needs a routable address and {exc}"
        say(reason)
        pytest.skip(reason)
    check_conversation(out, shot)
    rtp = out["rtp"]
    assert rtp["inbound"]["bytesReceived"] > 1000 and rtp["inbound"]["packetsReceived"] > 50
    assert (rtp["inbound"]["totalAudioEnergy"] or 0) > 0  # not just packets: sound
    assert rtp["outbound"]["packetsSent"] > 50  # the microphone went out


def test_browser_websocket_mode(chromium, microphone_wav):
    shot = ARTIFACTS / "browser-websocket.png"
    shot.unlink(missing_ok=True)
    out = run_result([PYTHON, "-m", "tests.e2e.webrtc.run_browser", "--mode", "websocket",
                      "--wav", str(microphone_wav), "--shot", str(shot)], timeout=240)
    check_conversation(out, shot)
    assert out["rtp"] is None  # no peer connection in this mode


def test_browser_microphone_denied(chromium):
    out = run_result([PYTHON, "-m", "tests.e2e.webrtc.run_browser", "--deny-mic",
                      "--shot", str(ARTIFACTS / "browser-denied.png")], timeout=120)
    assert "error" not in out, out
    assert out["status"] == "Microphone blocked"
    assert "denied" in out["banner"].lower() and "allow the microphone" in out["banner"].lower()
    assert out["connect_enabled"]
    assert out["sessions"] == 0
