"""Child processes started off the event loop, for engines run once per request (espeak-ng).

uvloop's `subprocess_exec` forks on the loop's thread and waits there for the child to exec, and its child runs
the fork handlers the process registered: with model threads running beside it (CTranslate2, onnxruntime, tqdm's
monitor) the child can hang before its exec, and the loop with it: `bench_load`'s talking step with Whisper and
espeak-ng froze the server that way (every session, `/healthz` too, at 0.05 cores, the loop in
`create_subprocess_exec`). `subprocess.Popen` on a worker thread (vfork, no Python code in the child) instead: the
loop only ever reads the child's stdout when it is readable. (Not `connect_read_pipe`: uvloop's transport closes the
descriptor itself, and the `Popen`'s file object closed it again later, by then another pipe's.)
"""

from __future__ import annotations

import asyncio
import os
import subprocess
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

_SPAWNER = ThreadPoolExecutor(max_workers=2, thread_name_prefix="spawn")  # starts and reaps; each call is short
READ_LIMIT = 1 << 20
READ_BYTES = 1 << 16


class Child:
    """A started process: its stdout as a `StreamReader` (fed by the loop's reader callback on the pipe, whose only
    owner is the `Popen`'s file object), its input already written and closed."""

    def __init__(self, popen: subprocess.Popen, loop: asyncio.AbstractEventLoop) -> None:
        assert popen.stdout is not None
        self._popen = popen
        self._loop = loop
        self.stdout = asyncio.StreamReader(limit=READ_LIMIT, loop=loop)
        self._fd = popen.stdout.fileno()
        os.set_blocking(self._fd, False)
        loop.add_reader(self._fd, self._readable)
        self._reading = True

    def _readable(self) -> None:
        try:
            data = os.read(self._fd, READ_BYTES)
        except BlockingIOError:
            return
        except OSError as exc:
            self._stop_reading()
            self.stdout.set_exception(exc)
            return
        if data:
            self.stdout.feed_data(data)
        else:
            self._stop_reading()
            self.stdout.feed_eof()

    def _stop_reading(self) -> None:
        if self._reading:
            self._reading = False
            self._loop.remove_reader(self._fd)

    @property
    def pid(self) -> int:
        return self._popen.pid

    @property
    def returncode(self) -> int | None:
        return self._popen.poll()

    async def wait(self) -> int:
        """Its exit status (reaped on a worker thread: the loop never waits)."""
        return await self._loop.run_in_executor(_SPAWNER, self._popen.wait)

    async def stderr(self) -> str:
        """What it wrote to stderr; call once it has exited."""
        err = self._popen.stderr
        if err is None:
            return ""
        data = await self._loop.run_in_executor(_SPAWNER, err.read)
        return data.decode(errors="replace").strip()

    async def aclose(self) -> None:
        """Kill it if it still runs, reap it, close its pipes."""
        self._stop_reading()
        if self._popen.poll() is None:
            self._popen.kill()
        await self.wait()
        for pipe in (self._popen.stdout, self._popen.stderr):
            if pipe is not None:
                pipe.close()


def _start(argv: Sequence[str], data: bytes) -> subprocess.Popen:
    proc = subprocess.Popen(list(argv), stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdin is not None
    try:
        proc.stdin.write(data)  # a line of text: well under the pipe's buffer
    except BrokenPipeError:
        pass  # it exited at once; its status says why
    finally:
        proc.stdin.close()
    return proc


async def spawn(argv: Sequence[str], data: bytes = b"") -> Child:
    """Start `argv` with `data` on its stdin. FileNotFoundError / PermissionError as `subprocess.Popen` raises
    them. A caller cancelled meanwhile leaves no process behind."""
    loop = asyncio.get_running_loop()
    started = loop.run_in_executor(_SPAWNER, _start, argv, data)
    try:
        proc = await asyncio.shield(started)
    except asyncio.CancelledError:
        started.add_done_callback(_kill_started)
        raise
    return Child(proc, loop)


def _kill_started(started: asyncio.Future) -> None:
    if started.cancelled() or started.exception() is not None:
        return
    proc: subprocess.Popen = started.result()
    proc.kill()
    _SPAWNER.submit(proc.communicate)  # reaps it and closes its pipes
