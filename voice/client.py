"""A thin async client for apps: connect, send audio from a file or a numpy array, iterate events."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
import websockets

from dsp import resample

MIN_RATE, MAX_RATE = 8000, 192000


class AudioFileError(ValueError):
    """A file that cannot be replayed, with the reason in words."""


def load_audio(path: str | Path) -> tuple[np.ndarray, int]:
    """Mono int16 samples and their rate; raises AudioFileError for anything unusable."""
    path = Path(path)
    if not path.is_file():
        raise AudioFileError(f"{path}: no such file")
    try:
        info = sf.info(str(path))
    except Exception as exc:  # soundfile raises its own and RuntimeError types
        raise AudioFileError(f"{path}: not a readable audio file ({exc})") from None
    if not MIN_RATE <= info.samplerate <= MAX_RATE:
        raise AudioFileError(f"{path}: sample rate {info.samplerate} Hz is outside {MIN_RATE}..{MAX_RATE} Hz")
    if info.frames <= 0:
        raise AudioFileError(f"{path}: the file holds no audio samples")
    floating = info.subtype in ("FLOAT", "DOUBLE")
    try:
        data, rate = sf.read(str(path), dtype="float32" if floating else "int16", always_2d=True)
    except Exception as exc:
        raise AudioFileError(f"{path}: could not decode audio ({exc})") from None
    if data.shape[0] == 0:
        raise AudioFileError(f"{path}: the file holds no audio samples")
    if floating:  # NaN and infinity would come out of an int16 conversion as full-scale noise
        bad = int(np.count_nonzero(~np.isfinite(data)))
        if bad:
            raise AudioFileError(f"{path}: {bad} of its {data.size} float samples are NaN or infinite")
        data = (np.clip(data, -1.0, 1.0) * 32767.0).astype(np.int16)
    mono = data.mean(axis=1).astype(np.int16) if data.shape[1] > 1 else data[:, 0]
    return np.ascontiguousarray(mono), int(rate)


def ws_url(base: str, model: str | None = None) -> str:
    url = base.rstrip("/")
    url = "ws" + url[4:] if url.startswith("http") else url
    if not url.endswith("/v1/realtime"):
        url += "/v1/realtime"
    return url + (f"?model={model}" if model else "")


class RealtimeClient:
    def __init__(self, url: str, api_key: str | None = None, rate: int = 24000) -> None:
        self.url = ws_url(url)
        self.api_key = api_key
        self.rate = rate
        self._ws: Any = None

    async def __aenter__(self) -> RealtimeClient:
        headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
        self._ws = await websockets.connect(self.url, additional_headers=headers, max_size=None, open_timeout=30)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        if self._ws is not None:
            await self._ws.close()

    async def send(self, event: dict[str, Any]) -> None:
        await self._ws.send(json.dumps(event))

    async def update_session(self, **session: Any) -> None:
        await self.send({"type": "session.update", "session": {"type": "realtime", **session}})

    async def append(self, pcm: np.ndarray) -> None:
        """Send PCM already at the session's input rate."""
        await self.send({"type": "input_audio_buffer.append",
                         "audio": base64.b64encode(np.asarray(pcm, dtype="<i2").tobytes()).decode("ascii")})

    async def stream_audio(self, pcm: np.ndarray, rate: int, *, chunk_ms: int = 20, speed: float = 1.0,
                           on_chunk: Any = None) -> None:
        """Send audio in chunks paced at `speed` x real time (speed 0 sends as fast as possible)."""
        pcm = resample(pcm, rate, self.rate)
        step = self.rate * chunk_ms // 1000
        loop = asyncio.get_running_loop()
        start = loop.time()
        for i, offset in enumerate(range(0, len(pcm), step)):
            if speed > 0:
                due = start + i * chunk_ms / 1000.0 / speed
                delay = due - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)
            chunk = pcm[offset:offset + step]
            await self.append(chunk)
            if on_chunk is not None:
                on_chunk((offset + len(chunk)) * 1000.0 / self.rate)

    async def stream_file(self, path: str | Path, *, speed: float = 1.0) -> None:
        pcm, rate = load_audio(path)
        await self.stream_audio(pcm, rate, speed=speed)

    async def recv(self, timeout: float | None = None) -> dict[str, Any]:
        return json.loads(await asyncio.wait_for(self._ws.recv(), timeout))

    async def events(self) -> AsyncIterator[dict[str, Any]]:
        try:
            async for message in self._ws:
                yield json.loads(message)
        except websockets.ConnectionClosed:
            return


def decode_audio_delta(event: dict[str, Any]) -> np.ndarray:
    return np.frombuffer(base64.b64decode(event["delta"]), dtype="<i2")
