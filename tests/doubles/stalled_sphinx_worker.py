"""A pocketsphinx worker double behind the real worker protocol: it answers "ready" and the first request,
then stops reading its socket, as a worker does that is far behind (or hung)."""

from __future__ import annotations

import time


def serve(conn, pool_size: int, sample_rate: int) -> None:
    conn.send(("ok", "ready"))
    msg = conn.recv()
    conn.send(("ok", None if msg[0] == "push" else ("", [])))
    time.sleep(600)  # killed when the recogniser closes
