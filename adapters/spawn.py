"""Child processes started off the event loop: espeak-ng (one per sentence), the local model's server, the capsule
sandbox.

uvloop's `subprocess_exec` forks on the loop's thread and waits there for the child to exec, and its child runs
the fork handlers the process registered: with model threads running beside it (CTranslate2, onnxruntime, tqdm's
monitor) the child can hang before its exec, and the loop with it: `bench_load`'s talking step with Whisper and
espeak-ng froze the server that way (every session, `/healthz` too, at 0.05 cores, the loop in
`create_subprocess_exec`). `subprocess.Popen` on a worker thread (vfork, no Python code in the child) instead; the
loop reads the child's output when its pipe is readable and learns of its exit from a pidfd, so no thread waits
for a child that lives long. (Not `connect_read_pipe`: uvloop's transport closed the descriptor itself, and the
`Popen`'s file object closed it again later, by then another child's pipe.)
"""

from __future__ import annotations

import asyncio
import os
import subprocess
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor

_SPAWNER = ThreadPoolExecutor(max_workers=2, thread_name_prefix="spawn")  # starts children; each call is short
READ_LIMIT = 1 << 20
READ_BYTES = 1 << 16


class _PipeReader:
    """A child's output pipe into a `StreamReader`, read by the loop when it is readable; the `Popen`'s file
    object stays the descriptor's one owner."""

    def __init__(self, pipe, loop: asyncio.AbstractEventLoop, limit: int) -> None:
        self.stream = asyncio.StreamReader(limit=limit, loop=loop)
        self._pipe = pipe
        self._loop = loop
        self._fd = pipe.fileno()
        os.set_blocking(self._fd, False)
        loop.add_reader(self._fd, self._readable)
        self._reading = True

    def _readable(self) -> None:
        try:
            data = os.read(self._fd, READ_BYTES)
        except BlockingIOError:
            return
        except OSError as exc:
            self.stop()
            self.stream.set_exception(exc)
            return
        if data:
            self.stream.feed_data(data)
        else:
            self.stop()
            self.stream.feed_eof()

    def stop(self) -> None:
        if self._reading:
            self._reading = False
            self._loop.remove_reader(self._fd)

    def close(self) -> None:
        self.stop()
        self._pipe.close()


class Child:
    """A started process: `stdout` and `stderr` as `StreamReader`s, its stdin closed once `data` was written
    (or kept open for `close_stdin()`), `wait()` resolved by the loop when it exits."""

    def __init__(self, popen: subprocess.Popen, loop: asyncio.AbstractEventLoop, limit: int) -> None:
        assert popen.stdout is not None
        self._popen = popen
        self._loop = loop
        self._out = _PipeReader(popen.stdout, loop, limit)
        self._err = _PipeReader(popen.stderr, loop, limit) if popen.stderr is not None else None
        self.stdout = self._out.stream
        self.stderr = self._err.stream if self._err is not None else None  # None: merged into stdout
        self._exited: asyncio.Future[int] = loop.create_future()
        self._pidfd = os.pidfd_open(popen.pid)
        loop.add_reader(self._pidfd, self._reap)

    def _reap(self) -> None:
        code = self._popen.poll()
        if code is None:
            return
        self._loop.remove_reader(self._pidfd)
        os.close(self._pidfd)
        self._pidfd = -1
        if not self._exited.done():
            self._exited.set_result(code)

    @property
    def pid(self) -> int:
        return self._popen.pid

    @property
    def returncode(self) -> int | None:
        return self._popen.returncode

    async def wait(self) -> int:
        """Its exit status, once it has exited (the loop is told by its pidfd: nothing waits meanwhile)."""
        return await asyncio.shield(self._exited)

    def close_stdin(self) -> None:
        if self._popen.stdin is not None and not self._popen.stdin.closed:
            self._popen.stdin.close()

    def terminate(self) -> None:
        if self._popen.returncode is None:
            self._popen.terminate()

    def kill(self) -> None:
        if self._popen.returncode is None:
            self._popen.kill()

    async def aclose(self) -> None:
        """Kill it if it still runs, reap it, close its pipes."""
        self.close_stdin()
        self.kill()
        await self.wait()
        self._out.close()
        if self._err is not None:
            self._err.close()


def _start(argv: Sequence[str], data: bytes, keep_stdin: bool, options: dict) -> subprocess.Popen:
    proc = subprocess.Popen(list(argv), stdin=subprocess.PIPE, stdout=subprocess.PIPE, **options)
    assert proc.stdin is not None
    try:
        if data:
            proc.stdin.write(data)  # a line of text: well under the pipe's buffer
            proc.stdin.flush()
    except BrokenPipeError:
        pass  # it exited at once; its status says why
    finally:
        if not keep_stdin:
            proc.stdin.close()
    return proc


async def spawn(argv: Sequence[str], data: bytes = b"", *, env: Mapping[str, str] | None = None,
                cwd: str | None = None, keep_stdin: bool = False, new_session: bool = False,
                merge_stderr: bool = False, limit: int = READ_LIMIT) -> Child:
    """Start `argv` with `data` on its stdin (closed after it unless `keep_stdin`: a child that lives as long as
    its stdin stays open), in `cwd` with `env`; `new_session`: its own process group (to kill it whole);
    `merge_stderr`: stderr into stdout. FileNotFoundError / PermissionError as `subprocess.Popen` raises them. A
    caller cancelled meanwhile leaves no process behind."""
    loop = asyncio.get_running_loop()
    options = {"stderr": subprocess.STDOUT if merge_stderr else subprocess.PIPE, "cwd": cwd,
               "env": None if env is None else dict(env), "start_new_session": new_session}
    started = loop.run_in_executor(_SPAWNER, _start, argv, data, keep_stdin, options)
    try:
        proc = await asyncio.shield(started)
    except asyncio.CancelledError:
        started.add_done_callback(_kill_started)
        raise
    return Child(proc, loop, limit)


def _kill_started(started: asyncio.Future) -> None:
    if started.cancelled() or started.exception() is not None:
        return
    proc: subprocess.Popen = started.result()
    proc.kill()
    _SPAWNER.submit(_reap_killed, proc)


def _reap_killed(proc: subprocess.Popen) -> None:
    """Worker thread: reap a child killed at once, close its pipes. (Not `communicate()`: with its stdin closed
    already it raises before it waits, and the child stays a zombie.)"""
    proc.wait()
    for pipe in (proc.stdin, proc.stdout, proc.stderr):
        if pipe is not None:
            pipe.close()
