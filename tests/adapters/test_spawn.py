"""adapters/spawn.py: a child started off the event loop reads its input and streams its output back; a fork
handler that would hang a forked child (as model threads' locks can) does not hold it up; nothing outlives it."""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
from pathlib import Path

import pytest
import uvloop

from adapters.spawn import spawn

_held = threading.Lock()
_armed = False


def _hang_in_child() -> None:
    if _armed:  # a lock another thread held at the fork: a child running this never gets to its exec
        _held.acquire()


os.register_at_fork(after_in_child=_hang_in_child)


def on_uvloop(main, timeout_s: float = 30.0) -> None:
    """Run `main()` on the server's loop (uvloop) in a thread of its own, bounded: a loop stuck in a fork never
    comes back, and the test fails instead of hanging."""
    failure: list[BaseException] = []

    def run() -> None:
        try:
            uvloop.run(main())
        except BaseException as exc:  # reported by the test thread
            failure.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(timeout_s)
    assert not thread.is_alive(), "the loop did not come back"
    if failure:
        raise failure[0]


async def test_a_child_reads_its_input_and_its_output_streams_back():
    child = await spawn(["cat"], b"hello there\n")
    assert await asyncio.wait_for(child.stdout.read(), 10) == b"hello there\n"
    assert await asyncio.wait_for(child.wait(), 10) == 0
    await child.aclose()


def test_fork_handlers_do_not_run_in_the_child_nor_hold_up_the_server_loop():
    """On the server's loop (uvloop), whose own `subprocess_exec` would wait for such a child for ever."""
    global _armed
    got: list[bytes] = []

    async def start_one() -> None:
        child = await spawn(["echo", "started"])
        got.append(await asyncio.wait_for(child.stdout.read(), 10))
        await child.aclose()

    _held.acquire()
    _armed = True
    try:
        on_uvloop(start_one)
        assert got == [b"started\n"]
    finally:
        _armed = False
        _held.release()


def test_many_children_at_once_each_get_their_own_output():
    """On the server's loop: descriptors are closed once, by their one owner (uvloop's pipe transport closed them
    itself, and the `Popen`'s file object again later, by then another child's pipe)."""
    async def one(i: int) -> bytes:
        child = await spawn(["cat"], f"child {i}\n".encode())
        try:
            return await asyncio.wait_for(child.stdout.read(), 10)
        finally:
            await child.aclose()

    async def main() -> None:
        for _ in range(3):
            got = await asyncio.gather(*(one(i) for i in range(24)))
            assert got == [f"child {i}\n".encode() for i in range(24)]

    on_uvloop(main)


async def test_a_child_kept_on_its_stdin_lives_until_it_is_closed():
    child = await spawn(["cat"], b"x", keep_stdin=True)
    assert await asyncio.wait_for(child.stdout.readexactly(1), 10) == b"x"
    assert child.returncode is None  # cat still waits for more
    child.close_stdin()
    assert await asyncio.wait_for(child.wait(), 10) == 0
    await child.aclose()


async def test_children_waited_for_hold_no_thread():
    """Waiting for long-lived children (the local model's server) takes none of the threads that start children."""
    sleepers = [await spawn(["sleep", "30"]) for _ in range(4)]
    waits = [asyncio.ensure_future(s.wait()) for s in sleepers]
    try:
        child = await asyncio.wait_for(spawn(["echo", "still starting"]), 10)
        assert await asyncio.wait_for(child.stdout.read(), 10) == b"still starting\n"
        await child.aclose()
        assert not any(w.done() for w in waits)
    finally:
        for s in sleepers:
            await s.aclose()
    assert all(w.done() and w.result() < 0 for w in waits)  # killed


async def test_a_child_closed_early_is_killed_and_reaped():
    child = await spawn(["sleep", "30"])
    await asyncio.wait_for(child.aclose(), 10)
    assert child.returncode is not None and child.returncode < 0  # killed


async def test_a_caller_cancelled_while_its_child_starts_leaves_no_zombie():
    for _ in range(20):  # some cancels land before the start, some while it runs, some after
        task = asyncio.ensure_future(spawn(["sleep", "30"]))
        await asyncio.sleep(0)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            child = await task
            await child.aclose()  # started before the cancel landed: closed here
    for _ in range(100):  # bounded: 5 s for the worker thread to reap what it killed
        left = _children("sleep")
        if not left:
            break
        await asyncio.sleep(0.05)
    assert not left, left  # neither running nor a zombie


def _children(comm: str) -> list[str]:
    """This process's children named `comm`, with their state, from /proc (starting `ps` would let `subprocess`
    reap zombies of Popen objects already collected, and hide them)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            head, rest = stat.read_text().rsplit(")", 1)
        except OSError:
            continue
        fields = rest.split()
        if head.split("(", 1)[1] == comm and int(fields[1]) == os.getpid():
            found.append(f"{stat.parent.name} {fields[0]}")
    return found


async def test_a_missing_binary_is_the_error_popen_raises():
    with pytest.raises(FileNotFoundError):
        await spawn(["/nonexistent/espeak-ng"])
