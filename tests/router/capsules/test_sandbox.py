"""router/capsules/sandbox.py: generated code runs against its tests in a child that cannot reach the network,
start processes or write outside its scratch directory, and is killed at its deadline."""

from __future__ import annotations

from pathlib import Path

from router.capsules.sandbox import extract_code, run_tests

TESTS = "assert add(1, 2) == 3\n\nassert add(-1, 1) == 0\n\nassert add(2, 2) == 5"


async def test_each_test_block_counts():
    outcome = await run_tests("def add(a, b):\n    return a + b", TESTS)
    assert (outcome.passed, outcome.failed, outcome.pass_rate) == (2, 1, 2 / 3)
    assert outcome.error == "AssertionError"


async def test_broken_code_fails_every_test():
    outcome = await run_tests("def add(a, b) return", TESTS)
    assert (outcome.passed, outcome.failed) == (0, 3)
    assert outcome.error.startswith("solution:") and "SyntaxError" in outcome.error


async def test_the_network_processes_and_foreign_files_are_refused(tmp_path: Path):
    target = tmp_path / "pwned"
    for code in ("import socket\nsocket.create_connection(('127.0.0.1', 80))",
                 "import subprocess\nsubprocess.run(['true'])",
                 "import os\nos.system('true')",
                 f"open({str(target)!r}, 'w').write('x')"):
        outcome = await run_tests(code, "assert True")
        assert outcome.passed == 0 and "PermissionError: sandbox:" in outcome.error, code
    assert not target.exists()
    inside = await run_tests("open('scratch.txt', 'w').write('ok')", "assert open('scratch.txt').read() == 'ok'")
    assert inside.passed == 1  # its own directory is its to use


async def test_a_loop_is_killed_at_the_deadline_and_memory_is_capped():
    spin = await run_tests("while True:\n    pass", "assert True", timeout_s=1.0)
    assert spin.timed_out and spin.passed == 0
    hog = await run_tests("x = bytearray(4 * 1024 ** 3)", "assert True")
    assert hog.passed == 0 and "MemoryError" in hog.error


def test_the_code_of_a_reply_is_its_fenced_blocks():
    assert extract_code("Here:\n```python\ndef f():\n    return 1\n```\nDone.") == "def f():\n    return 1"
    assert extract_code("def g(): pass") == "def g(): pass"
