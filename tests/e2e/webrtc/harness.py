"""Running the end-to-end programs as subprocesses and reading their `RESULT <json>` line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

from tests.helpers import ROOT

PYTHON = str(ROOT / ".venv" / "bin" / "python") if (ROOT / ".venv" / "bin" / "python").exists() else sys.executable


def run_result(cmd: list[str], *, timeout: float, env: dict[str, str] | None = None) -> dict[str, Any]:
    """Run `cmd` from the repo root; return its RESULT object, or raise with the tail of its output."""
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout, check=False,
                          env={**os.environ, **(env or {})})
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT "):])
    raise AssertionError(f"{' '.join(cmd[-6:])} exited {proc.returncode} without a result:\n"
                         f"{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}")


def say(message: str) -> None:
    """Print past pytest's capture, so a skip's reason is seen even without -rs."""
    stream = sys.__stderr__
    if stream is not None:
        stream.write(f"\n{message}\n")
        stream.flush()
