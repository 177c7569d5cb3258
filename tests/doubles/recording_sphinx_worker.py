"""A pocketsphinx worker double behind the real worker protocol that writes down the order in which it
receives requests (one line per request: `op sid`) and takes `delay_s` over each, as a busy decoder does."""

from __future__ import annotations

import time


def serve(conn, pool_size: int, sample_rate: int, *, log_path: str, delay_s: float) -> None:
    conn.send(("ok", "ready"))
    with open(log_path, "a") as log:
        while True:
            try:
                msg = conn.recv()
            except (EOFError, OSError):
                return
            log.write(f"{msg[0]} {msg[1] if len(msg) > 1 else ''}".rstrip() + "\n")
            log.flush()
            if msg[0] == "stop":
                conn.send(("ok", None))
                return
            time.sleep(delay_s)
            conn.send(("ok", ("", []) if msg[0] == "finish" else None))
