"""Connect/drop churn: 1000 cycles a round, clients leaving idle, mid-utterance, mid-response and by TCP reset, 8 at
a time, against `somagent-voice serve` (embedded parts) in its own process; what the process holds after each
round once its sessions have ended.

Run: .venv/bin/python -m benchmarks churn

Goal (the hardening issue): resident memory grows under 5 % over the second round (the first warms caches and
allocator pools), sessions return to 0, no file descriptor or child process is left behind. The anchor is the
footprint after a warm-up of 40 cycles; cycles per second is the churn rate the server sustained.
"""

from __future__ import annotations

import asyncio
import time

from tests.e2e.churn import churn, churn_server, settled

CYCLES = 1000
ROUNDS = 3


async def _run() -> None:
    with churn_server() as (url, pid):
        await churn(url, 40)
        base = await settled(url, pid)
        print(f"warm-up: rss {base.rss_kb / 1024:.1f} MiB, {base.fds} fds, {len(base.children)} children")
        previous = base
        for r in range(1, ROUNDS + 1):
            started = time.perf_counter()
            refused = await churn(url, CYCLES)
            took = time.perf_counter() - started
            fp = await settled(url, pid, base)
            growth = (fp.rss_kb - previous.rss_kb) / previous.rss_kb * 100
            leaks = []
            if fp.sessions:
                leaks.append(f"{fp.sessions} sessions")
            if fp.fds > base.fds + 2:
                leaks.append(f"{fp.fds - base.fds} fds")
            if len(fp.children) > len(base.children):
                leaks.append(f"{len(fp.children) - len(base.children)} children")
            verdict = "ok" if (r == 1 or growth < 5.0) and not leaks else "LEAK: " + ", ".join(leaks or ["rss"])
            print(f"round {r}: {CYCLES} cycles in {took:.1f} s ({CYCLES / took:.0f}/s), rss {fp.rss_kb / 1024:.1f} "
                  f"MiB ({growth:+.2f} % over the round before), {fp.fds} fds, {len(fp.children)} children, "
                  f"{fp.sessions} sessions, {refused} refused busy  {verdict}")
            previous = fp


def main() -> None:
    asyncio.run(_run())


if __name__ == "__main__":
    main()
