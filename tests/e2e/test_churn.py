"""Connect/drop churn leaves nothing behind: after rounds of clients leaving idle, mid-utterance, mid-response and
by TCP reset, the server (its own process) has no session, no child process and no more file descriptors than
after the first round. Memory over 1000-cycle rounds: benchmarks/bench_churn.py."""

from __future__ import annotations

from tests.e2e.churn import churn, churn_server, settled

CYCLES = 250  # a round: about 60 of each way of leaving


async def test_clients_that_leave_every_way_leave_no_session_child_or_descriptor_behind():
    with churn_server() as (url, pid):
        await churn(url, 8)  # the first connections open what stays open (the recogniser's worker pipes ...)
        base = await settled(url, pid)
        assert base.sessions == 0
        assert not [c for c in base.children if "espeak" in c], base.children
        rounds = []
        for _ in range(2):
            await churn(url, CYCLES)
            rounds.append(await settled(url, pid, base))
    for after in rounds:
        assert after.sessions == 0, rounds  # every session ended
        assert after.children == base.children, (base, rounds)  # no espeak-ng left running, no worker more
        assert after.fds <= base.fds + 2, (base, rounds)  # no socket, pipe or file left open per session
