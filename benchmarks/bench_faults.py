"""Provider faults: how long after a broken dialogue provider's fault becomes detectable the user's answer starts.

Run: .venv/bin/python -m benchmarks faults

A real local HTTP server speaking streaming chat completions (tests/router/fake_chat_server.py) plays the primary,
broken in each way of the hardening issue, and a healthy backup; each call goes through `ModelRouter.stream_chat`
as a response does, resuming with the other models when the primary broke off mid-reply (voice/response.py). The
fault is detectable at once for a refused connection, an HTTP 500, a body that is no stream and a stream cut
mid-reply; at the first-output deadline for a provider that hangs or never speaks; a stall deadline after its last
token for one that stalls mid-reply. The figure is the time from then to the answer's first token (the backup's,
or the resumed reply's), the median of RUNS calls; the anchor is the backup answering directly, so the ratio is
what the fault costs beyond a normal first token. Goal (the hardening issue): under 1 s.
"""

from __future__ import annotations

import asyncio
import statistics
import time

from adapters.llm.base import ChatMessage, ChatRequest
from router import CallContext, Role, StreamInterrupted
from router.clock import ManualClock
from tests.router.fake_chat_server import FakeChatServer, Script
from tests.router.router_testkit import http_entry, make_router
from voice.serving import free_port

RUNS = 7
DEADLINE_S = 0.5  # first output and stall, short so the benchmark is quick; detection is measured from them
REQUEST = ChatRequest(messages=(ChatMessage("user", "How far is it?"),))
FAULTS: dict[str, tuple[Script | None, str]] = {  # the primary's script, and when its fault is detectable
    "refused": (None, "at_once"),
    "http_500": (Script(status=500), "at_once"),
    "garbage_sse": (Script(garbage=b"data: {oops\n\n"), "at_once"),
    "html_body": (Script(garbage=b"<html>502 Bad Gateway</html>"), "at_once"),
    "breaks_mid_reply": (Script(tokens=("Ten", " meters"), break_after=1), "at_once"),
    "hangs_before_headers": (Script(hang_s=30.0), "deadline"),
    "silent_stream": (Script(first_token_delay_s=30.0), "deadline"),
    "stalls_mid_reply": (Script(tokens=("Ten", " meters", " away."), stall_after=1, stall_s=30.0), "stall"),
}


async def _answer(router, i: int) -> tuple[float, float, float | None]:
    """(start, the answer's first token, the broken reply's last token where it broke off mid-reply)."""
    start = time.perf_counter()
    broken: set[str] = set()
    before: list[float] = []  # text before any break (the backup's, when the primary failed before output)
    after: list[float] = []  # text of the resumed reply
    for _ in range(3):
        try:
            async for chunk in router.stream_chat(Role.DIALOGUE, REQUEST, CallContext(conversation_id=f"c{i}"),
                                                  exclude=broken):
                if chunk.text:
                    (after if broken else before).append(time.perf_counter())
            break
        except StreamInterrupted as exc:
            broken.add(exc.model)
    if broken:
        return start, after[0], before[-1]
    return start, before[0], None


async def _run() -> None:
    fake = FakeChatServer().start()
    try:
        fake.script("backup", Script(tokens=("About", " ten", " meters.")))
        anchors = []
        for i in range(RUNS):  # a fresh router each call, as below (its first call opens the HTTP client)
            anchor_router = make_router([http_entry("backup", fake.base_url)], ("backup",),
                                        clock=ManualClock(1000.0), first_output_s=5.0, stall_s=5.0)
            start, first, _ = await _answer(anchor_router, i)
            anchors.append(first - start)
            await anchor_router.aclose()
        anchor = statistics.median(anchors)
        print(f"anchor: the backup's first token, answering directly: {anchor * 1000:.1f} ms (median of {RUNS})")
        print(f"{'fault':<22} {'detectable':<11} {'detect->answer ms':>18} {'x anchor':>9}")
        for name, (script, when) in FAULTS.items():
            fake.reset()
            fake.script("backup", Script(tokens=("About", " ten", " meters.")))
            url = f"http://127.0.0.1:{free_port()}/v1" if script is None else fake.base_url  # nothing listens
            if script is not None:
                fake.script("primary", script)
            gaps = []
            for i in range(RUNS):
                # a fresh router each call: the primary's breaker never opens, every call meets the fault
                router = make_router([http_entry("primary", url), http_entry("backup", fake.base_url)],
                                     ("primary", "backup"), clock=ManualClock(1000.0), first_output_s=DEADLINE_S,
                                     stall_s=DEADLINE_S)
                start, first, last_primary = await _answer(router, i)
                await router.aclose()
                spoke = last_primary if last_primary is not None else start
                detectable = {"at_once": spoke, "deadline": start + DEADLINE_S, "stall": spoke + DEADLINE_S}[when]
                gaps.append(first - detectable)
            gap = statistics.median(gaps)
            verdict = "ok" if gap < 1.0 else "OVER 1 s"
            print(f"{name:<22} {when:<11} {gap * 1000:>18.1f} {gap / anchor:>9.1f}  {verdict}")
    finally:
        fake.stop()


def main() -> None:
    asyncio.run(_run())


if __name__ == "__main__":
    main()
