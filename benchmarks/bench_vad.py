"""webrtcvad vs Silero VAD: frame agreement with a reference labelling, false speech on noise, cost per 20 ms frame.

Audio (all 16 kHz, 20 ms frames):
- `leak-test`: fixtures/audio/vad/leak-test.wav (8 kHz, resampled with soxr).
- `speech+<noise>@<snr>`: every fixtures/audio/speech/*.wav, joined with 0.8 s of digital silence before, between
  and after the utterances, plus white or pink noise (seeded) at 20, 10, 5 and 0 dB SNR (speech power measured
  over the reference's speech frames of the clean signal). The clean joined signal is `speech+clean`.
- `noise-only`: 10 s of white or pink noise at the levels used above; every frame is non-speech.

Reference labelling (documented, not hand-checked): computed once on the *clean* signal. A frame is speech when its
energy is within 35 dB of the loudest frame of its utterance (and above -60 dBFS); speech runs are extended by a
hangover of 2 frames before and 5 after (40/100 ms), and gaps under 200 ms are filled. On leak-test the same rule
runs on the recording itself (its background is quiet). Agreement = fraction of frames where the detector equals the
reference; recall = speech frames found; false alarm = non-speech frames called speech.

Detectors: `dsp.vad.WebRtcVad` (threshold 0.0/0.25/0.5/0.75 = webrtcvad modes 0-3) and `dsp.silero.SileroVad`
(probability thresholds 0.3/0.5/0.7), both through `is_speech(frame)` on 20 ms frames, as a session calls them.

    .venv/bin/python -m benchmarks vad
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import soundfile as sf

from dsp.resample import resample

ROOT = Path(__file__).resolve().parent.parent
SPEECH = ROOT / "fixtures" / "audio" / "speech"
LEAK = ROOT / "fixtures" / "audio" / "vad" / "leak-test.wav"
RATE = 16000
FRAME = 320
GAP_S = 0.8
SNRS_DB = (20, 10, 5, 0)
NOISE_S = 10.0


def _frames(pcm: np.ndarray) -> np.ndarray:
    n = len(pcm) // FRAME
    return pcm[: n * FRAME].reshape(n, FRAME)


def _frame_db(pcm: np.ndarray) -> np.ndarray:
    f = _frames(pcm).astype(np.float64) / 32768.0
    return 10.0 * np.log10(np.maximum(np.mean(f * f, axis=1), 1e-12))


def reference_labels(pcm: np.ndarray, within_db: float = 35.0, floor_db: float = -60.0) -> np.ndarray:
    db = _frame_db(pcm)
    raw = (db >= db.max() - within_db) & (db >= floor_db)
    labels = raw.copy()
    idx = np.flatnonzero(raw)
    for i in idx:  # hangover
        labels[max(0, i - 2) : i + 6] = True
    # fill short gaps
    gap_max = int(0.2 * RATE / FRAME)
    run_start = None
    for i, v in enumerate(labels):
        if not v and run_start is None:
            run_start = i
        elif v and run_start is not None:
            if run_start > 0 and i - run_start < gap_max:
                labels[run_start:i] = True
            run_start = None
    return labels


def _load(path: Path) -> np.ndarray:
    pcm, rate = sf.read(path, dtype="int16")
    return resample(pcm, rate, RATE)


def speech_set() -> tuple[np.ndarray, np.ndarray]:
    gap = np.zeros(int(GAP_S * RATE), np.int16)
    pieces, labels = [gap], [np.zeros(len(gap) // FRAME, bool)]
    for path in sorted(SPEECH.glob("*.wav")):
        pcm = _load(path)
        pcm = pcm[: len(pcm) // FRAME * FRAME]
        pieces += [pcm, gap]
        labels += [reference_labels(pcm), np.zeros(len(gap) // FRAME, bool)]
    return np.concatenate(pieces), np.concatenate(labels)


def pink(n: int, rng: np.random.Generator) -> np.ndarray:
    spectrum = np.fft.rfft(rng.standard_normal(n))
    f = np.fft.rfftfreq(n)
    f[0] = f[1]
    x = np.fft.irfft(spectrum / np.sqrt(f), n)
    return x / np.sqrt(np.mean(x * x))


def white(n: int, rng: np.random.Generator) -> np.ndarray:
    return rng.standard_normal(n)


def mix(clean: np.ndarray, labels: np.ndarray, noise: np.ndarray, snr_db: float) -> tuple[np.ndarray, float]:
    """Scale unit-power `noise` to `snr_db` below the speech power; return the mix and the noise RMS (int16 units)."""
    f = _frames(clean).astype(np.float64)
    speech_power = float(np.mean(f[labels] ** 2))
    noise_rms = np.sqrt(speech_power / 10 ** (snr_db / 10))
    out = clean.astype(np.float64) + noise[: len(clean)] * noise_rms
    return np.clip(np.round(out), -32768, 32767).astype(np.int16), noise_rms


def detectors() -> dict[str, Callable[[], object]]:
    from dsp.silero import SileroVad

    try:
        from dsp.vad import WebRtcVad
    except ImportError:  # pragma: no cover - dsp/vad.py is part of the repo; fall back to webrtcvad itself
        import webrtcvad

        class WebRtcVad:  # type: ignore[no-redef]
            def __init__(self, threshold: float) -> None:
                self._vad = webrtcvad.Vad(min(3, int(threshold * 4)))

            def is_speech(self, frame: np.ndarray) -> bool:
                return self._vad.is_speech(frame.tobytes(), RATE)

    made: dict[str, Callable[[], object]] = {}
    for mode, threshold in enumerate((0.0, 0.25, 0.5, 0.75)):
        made[f"webrtc mode {mode}"] = lambda t=threshold: WebRtcVad(t)
    for threshold in (0.3, 0.5, 0.7):
        made[f"silero p>{threshold}"] = lambda t=threshold: SileroVad(t)
    return made


def run(make: Callable[[], object], pcm: np.ndarray) -> tuple[np.ndarray, float]:
    vad = make()
    frames = _frames(pcm)
    out = np.zeros(len(frames), bool)
    started = time.perf_counter()
    for i, frame in enumerate(frames):
        out[i] = vad.is_speech(frame)
    return out, (time.perf_counter() - started) / max(1, len(frames))


def main() -> None:
    rng = np.random.default_rng(2024)
    clean, labels = speech_set()
    n = len(clean)
    noises = {"white": white(n, rng), "pink": pink(n, rng)}
    conditions: list[tuple[str, np.ndarray, np.ndarray]] = []
    leak = _load(LEAK)
    conditions.append(("leak-test", leak, reference_labels(leak)))
    conditions.append(("speech+clean", clean, labels))
    noise_levels: dict[str, list[float]] = {k: [] for k in noises}
    for kind, noise in noises.items():
        for snr in SNRS_DB:
            mixed, rms = mix(clean, labels, noise, snr)
            conditions.append((f"speech+{kind}@{snr}dB", mixed, labels))
            noise_levels[kind].append(rms)
    m = int(NOISE_S * RATE)
    noise_only = []
    for kind, make_noise in (("white", white), ("pink", pink)):
        base = make_noise(m, np.random.default_rng(7))
        for snr, rms in zip(SNRS_DB, noise_levels[kind], strict=True):
            pcm = np.clip(np.round(base * rms), -32768, 32767).astype(np.int16)
            dbfs = 20 * np.log10(rms / 32768)
            noise_only.append((f"{kind} {dbfs:5.1f} dBFS (as @{snr}dB)", pcm))

    speech_share = labels.mean()
    print(f"speech set: {n / RATE:.1f} s, reference speech frames {speech_share:.0%}; "
          f"leak-test {len(leak) / RATE:.1f} s")
    names = list(detectors())
    made = detectors()
    costs: dict[str, list[float]] = {k: [] for k in names}

    print("\nframe agreement with the reference (recall of speech / false alarm on non-speech)")
    header = f"{'condition':24s}" + "".join(f"{k:>22s}" for k in names)
    print(header)
    for cond, pcm, ref in conditions:
        row = f"{cond:24s}"
        for k in names:
            out, cost = run(made[k], pcm)
            costs[k].append(cost)
            m_ = min(len(out), len(ref))
            o, r = out[:m_], ref[:m_]
            agree = float(np.mean(o == r))
            recall = float(np.mean(o[r])) if r.any() else float("nan")
            fa = float(np.mean(o[~r])) if (~r).any() else float("nan")
            row += f"{agree:8.1%} ({recall:4.0%}/{fa:4.0%})"
        print(row)

    print("\nfalse speech on noise-only audio (fraction of 20 ms frames called speech)")
    print(f"{'noise':24s}" + "".join(f"{k:>22s}" for k in names))
    for cond, pcm in noise_only:
        row = f"{cond:24s}"
        for k in names:
            out, cost = run(made[k], pcm)
            costs[k].append(cost)
            row += f"{float(np.mean(out)):22.1%}"
        print(row)

    print("\ncost per 20 ms frame (is_speech, this machine, single thread)")
    for k in names:
        print(f"  {k:16s} mean {np.mean(costs[k]) * 1e6:8.1f} us   ({np.mean(costs[k]) / 0.020:.2%} of real time)")


if __name__ == "__main__":
    main()
