"""Drive the web page in Debian's Chromium (Playwright) against an in-process server; prints `RESULT <json>`.

For WebRTC run it inside a network namespace, bound to the namespace's address (aiortc offers no loopback
candidates); the WebSocket mode and the microphone-denied check also work on 127.0.0.1:

    ip netns exec NS .venv/bin/python -m tests.e2e.webrtc.run_browser --host 192.0.2.7 --wav mic.wav --shot out.png
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
import traceback
from typing import Any

import httpx
from playwright.async_api import async_playwright

from voice.app import create_app
from voice.capacity import CapacityLimits
from voice.config import Settings
from voice.serving import running_server

CHROMIUM = "/usr/bin/chromium"
QUIET_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
               "--disable-sync", "--no-first-run", "--disable-quic", "--autoplay-policy=no-user-gesture-required"]

STATS_JS = """async () => {
  const pc = window.sgv && window.sgv.pc;
  if (!pc) return null;
  const out = {connectionState: pc.connectionState, inbound: null, outbound: null};
  (await pc.getStats()).forEach((s) => {
    if (s.type === 'inbound-rtp' && s.kind === 'audio')
      out.inbound = {bytesReceived: s.bytesReceived, packetsReceived: s.packetsReceived,
                     audioLevel: s.audioLevel ?? null, totalAudioEnergy: s.totalAudioEnergy ?? null};
    if (s.type === 'outbound-rtp' && s.kind === 'audio')
      out.outbound = {bytesSent: s.bytesSent, packetsSent: s.packetsSent};
  });
  return out;
}"""


async def texts(page, testid: str) -> list[str]:
    return [t.strip() for t in await page.locator(f'[data-testid="{testid}"]').all_inner_texts()]


async def poll(fn, timeout: float, interval: float = 0.2):
    """Call `fn` until it returns something truthy; bounded; returns the last value."""
    deadline = time.monotonic() + timeout
    while True:
        value = await fn()
        if value or time.monotonic() > deadline:
            return value
        await asyncio.sleep(interval)


async def live_sessions(base: str, settle_s: float = 5.0) -> int:
    async with httpx.AsyncClient(timeout=10) as http:
        async def zero():
            return (await http.get(base + "/healthz")).json()["sessions"] == 0
        await poll(zero, settle_s, 0.05)
        return (await http.get(base + "/healthz")).json()["sessions"]


async def conversation(page, base: str, app, args: argparse.Namespace, out: dict[str, Any]) -> None:
    if args.mode == "websocket":
        await page.locator("#settings summary").click()
        await page.locator('input[name="transport"][value="websocket"]').check()
    await page.get_by_test_id("connect").click()
    out["status_after_connect"] = await page.get_by_test_id("status").inner_text()

    async def user_line():
        lines = [t for t in await texts(page, "user-transcript") if t]
        return lines or None
    out["user_transcripts"] = await poll(user_line, 60) or []

    async def agent_line():
        lines = [t for t in await texts(page, "agent-transcript") if t]
        return lines or None
    out["agent_transcripts"] = await poll(agent_line, 30) or []

    async def agent_heard():
        level = await page.evaluate("window.sgv.outputLevel()")
        stats = await page.evaluate(STATS_JS)
        energy = ((stats or {}).get("inbound") or {}).get("totalAudioEnergy") or 0
        return (level, stats) if level > 0.01 and (stats is None or energy > 0) else None
    heard = await poll(agent_heard, 20)
    out["status_mid_call"] = await page.get_by_test_id("status").inner_text()
    if args.shot:
        await page.screenshot(path=args.shot)
    out["output_level"] = await page.evaluate("window.sgv.outputLevel()")
    out["rtp"] = await page.evaluate(STATS_JS)
    out["agent_heard"] = heard is not None

    async def latency():
        return [t for t in await texts(page, "turn-latency") if t] or None
    out["turn_latency"] = await poll(latency, 20) or []
    out["user_transcripts"] = [t for t in await texts(page, "user-transcript") if t]
    out["agent_transcripts"] = [t for t in await texts(page, "agent-transcript") if t]
    out["sessions_before_hangup"] = len(app.state.server.sessions)
    await page.get_by_test_id("hangup").click()
    out["status_after_hangup"] = await page.get_by_test_id("status").inner_text()
    out["sessions_after_hangup"] = await live_sessions(base)
    calls = getattr(app.state, "webrtc_calls", None)
    out["calls_after_hangup"] = len(calls.calls) if calls is not None else 0


async def denied(page, base: str, args: argparse.Namespace, out: dict[str, Any]) -> None:
    await page.get_by_test_id("connect").click()

    async def settled():
        return (await page.get_by_test_id("status").inner_text()) not in ("Ready", "Requesting microphone…")
    await poll(settled, 15)
    out["status"] = await page.get_by_test_id("status").inner_text()
    out["banner"] = await page.locator("#banner").inner_text()
    out["connect_enabled"] = await page.get_by_test_id("connect").is_enabled()
    if args.shot:
        await page.screenshot(path=args.shot)
    out["sessions"] = await live_sessions(base, 1.0)


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {"mode": args.mode}
    app = create_app(Settings(capacity=CapacityLimits(measured=False)))  # the harness shares the server's loop
    async with running_server(app, host=args.host) as base:
        flags = QUIET_FLAGS + [f"--unsafely-treat-insecure-origin-as-secure={base}",
                               "--use-fake-device-for-media-stream"]
        if args.deny_mic:
            flags.append("--deny-permission-prompts")
        else:
            flags += ["--use-fake-ui-for-media-stream", f"--use-file-for-fake-audio-capture={args.wav}"]
        async with async_playwright() as pw:
            browser = await pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=flags)
            try:
                page = await browser.new_page(viewport={"width": 900, "height": 760})
                console: list[str] = []
                page.on("console", lambda m: console.append(f"{m.type}: {m.text}")
                        if m.type in ("error", "warning") else None)
                page.on("pageerror", lambda e: console.append(f"pageerror: {e}"))
                await page.goto(base + "/")
                out["title"] = await page.title()
                try:
                    if args.deny_mic:
                        await denied(page, base, args, out)
                    else:
                        await conversation(page, base, app, args, out)
                except Exception as exc:
                    out["error"] = repr(exc)
                    out["traceback"] = traceback.format_exc()[-2000:]
                    if args.shot:
                        await page.screenshot(path=args.shot)
                out["console"] = console[-20:]
            finally:
                await browser.close()
        out["sessions_at_end"] = len(app.state.server.sessions)
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--wav", default="")
    parser.add_argument("--shot", default="")
    parser.add_argument("--mode", choices=["webrtc", "websocket"], default="webrtc")
    parser.add_argument("--deny-mic", action="store_true")
    args = parser.parse_args()
    print("RESULT " + json.dumps(asyncio.run(main_async(args))), flush=True)


if __name__ == "__main__":
    main()
