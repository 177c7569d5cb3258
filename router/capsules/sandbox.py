"""Run code a model wrote against a code capsule's unit tests, in a subprocess that can do little harm.

The child is a fresh interpreter in isolated mode (-I: no user site, no PYTHON* variables, no cwd on the path),
an empty environment and a scratch directory, with rlimits (CPU seconds, address space, file size, open files,
no core dumps) and a wall-clock deadline, killed with its process group when the deadline passes. Before the
model's code runs, an audit hook refuses sockets, new processes and opening files outside the scratch
directory for writing, so generated code cannot reach the network or the disk it was not given. Nothing here
blocks the event loop: the child is an asyncio subprocess.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import resource
import signal
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from adapters.spawn import Child, spawn

CPU_S = 5
MEMORY_BYTES = 512 * 1024 * 1024
FILE_BYTES = 1024 * 1024
OUTPUT_BYTES = 20_000
_FENCE = re.compile(r"```(?:python|py)?[ \t]*\n(.*?)```", re.S)

# Runs in the child: lock the process down, then run the solution and the tests, and report as JSON.
_HARNESS = r'''
import json, os, resource, sys, traceback
for limit, value in LIMITS:
    resource.setrlimit(limit, (value, value))
root = os.getcwd()
def _guard(event, args):
    if event.startswith(("socket.", "subprocess.", "os.system", "os.exec", "os.posix_spawn", "os.fork",
                         "os.spawn", "ctypes.", "pty.", "os.kill", "os.killpg")):
        raise PermissionError(f"sandbox: {event} is not allowed")
    if event == "open" and len(args) > 1 and isinstance(args[1], str) and any(c in args[1] for c in "wax+"):
        path = os.path.abspath(os.fsdecode(args[0])) if isinstance(args[0], (str, bytes)) else ""
        if not path.startswith(root + os.sep):
            raise PermissionError(f"sandbox: writing {path} is not allowed")
solution = open("solution.py").read()
tests = open("tests.py").read()
sys.addaudithook(_guard)
ns = {"__name__": "solution"}
result = {"passed": 0, "failed": 0, "error": None}
try:
    exec(compile(solution, "solution.py", "exec"), ns)
except BaseException as exc:
    result["error"] = "solution: " + "".join(traceback.format_exception_only(type(exc), exc)).strip()
else:
    blocks = [b for b in tests.split("\n\n") if b.strip()]
    for block in blocks:
        try:
            exec(compile(block, "tests.py", "exec"), dict(ns))
            result["passed"] += 1
        except BaseException as exc:
            result["failed"] += 1
            if result["error"] is None:
                result["error"] = "".join(traceback.format_exception_only(type(exc), exc)).strip()
sys.stdout.write("\n@@RESULT@@" + json.dumps(result))
'''


@dataclass(frozen=True)
class TestOutcome:
    passed: int
    failed: int
    error: str | None = None
    timed_out: bool = False

    @property
    def total(self) -> int:
        return self.passed + self.failed

    @property
    def pass_rate(self) -> float:
        return self.passed / self.total if self.total else 0.0


def extract_code(reply: str) -> str:
    """The code of a reply: its fenced blocks joined, else the whole reply."""
    blocks = _FENCE.findall(reply)
    return "\n\n".join(b.strip() for b in blocks) if blocks else reply.strip()


# set by the harness itself, first thing (a preexec_fn would run between fork and exec of a threaded parent)
_LIMITS = [(resource.RLIMIT_CPU, CPU_S), (resource.RLIMIT_AS, MEMORY_BYTES), (resource.RLIMIT_FSIZE, FILE_BYTES),
           (resource.RLIMIT_NOFILE, 64), (resource.RLIMIT_CORE, 0)]


async def run_tests(code: str, tests: str, timeout_s: float = 5.0) -> TestOutcome:
    """Each blank-line-separated block of `tests` is one test, run in the solution's namespace."""
    n_tests = sum(1 for b in tests.split("\n\n") if b.strip())
    with tempfile.TemporaryDirectory(prefix="somagent-sandbox-") as scratch:
        Path(scratch, "solution.py").write_text(code)
        Path(scratch, "tests.py").write_text(tests)
        Path(scratch, "harness.py").write_text(f"LIMITS = {_LIMITS!r}\n{_HARNESS}")
        # off the loop (adapters/spawn.py: never uvloop's subprocess_exec beside the server's model threads), in its
        # own process group, killed whole at the deadline
        proc = await spawn([sys.executable, "-I", "harness.py"], cwd=scratch, env={"PATH": "/usr/bin:/bin"},
                           new_session=True, merge_stderr=True)
        try:
            async with asyncio.timeout(timeout_s):
                out = await proc.stdout.read()
                await proc.wait()
        except TimeoutError:
            _kill(proc)
            await proc.wait()
            return TestOutcome(0, n_tests, f"timed out after {timeout_s:g} s", timed_out=True)
        finally:
            if proc.returncode is None:
                _kill(proc)
                await proc.wait()
            await proc.aclose()
    text = out[-OUTPUT_BYTES:].decode("utf-8", "replace")
    marker = text.rfind("@@RESULT@@")
    if marker < 0:
        reason = "killed by a limit" if proc.returncode and proc.returncode < 0 else f"exit {proc.returncode}"
        return TestOutcome(0, n_tests, f"no result ({reason}): {text[-300:].strip()}")
    data = json.loads(text[marker + len("@@RESULT@@"):])
    if data["error"] and data["error"].startswith("solution:"):
        return TestOutcome(0, n_tests, data["error"])
    return TestOutcome(int(data["passed"]), int(data["failed"]), data["error"])


def _kill(proc: Child) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
