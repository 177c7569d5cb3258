"""The pocketsphinx decoding process.

pocketsphinx holds the GIL while it decodes (tens of ms per 20 ms of speech at peaks), so decoding in a
thread would stall the server's event loop and every other session. Each worker process owns a few
warm decoders and serves requests from its pipe in order: ("push", sid, pcm_bytes, want_partial),
("finish", sid), ("close", sid), ("stop",). Replies: ("ok", payload) or ("error", message).
"""

from __future__ import annotations

FILLERS = frozenset({"<s>", "</s>", "<sil>", "[NOISE]", "[BREATH]", "[SMACK]", "[COUGH]", "[UM]", "[UH]", "++NOISE++"})
FRAMES_PER_SECOND = 100


def strip_variant(word: str) -> str:
    """Dictionary variants come as `word(2)`."""
    return word.split("(", 1)[0]


def clean(text: str) -> str:
    return " ".join(strip_variant(w) for w in text.split() if w not in FILLERS and not w.startswith("["))


def _final(decoder) -> tuple[str, list[tuple[str, float, float, float]]]:
    decoder.end_utt()
    hyp = decoder.hyp()
    words = [
        (
            strip_variant(seg.word),
            seg.start_frame / FRAMES_PER_SECOND,
            (seg.end_frame + 1) / FRAMES_PER_SECOND,
            seg.prob,
        )
        for seg in decoder.seg()
        if seg.word not in FILLERS and not seg.word.startswith("[")
    ]
    return (clean(hyp.hypstr) if hyp is not None else ""), words


def serve(conn, pool_size: int, sample_rate: int) -> None:
    from pocketsphinx import Decoder

    def new_decoder():
        # maxhmmpf caps the active HMMs per frame: the search's peaks drop under real time (43 -> 17 ms per
        # 20 ms frame) at the same WER on our fixtures; fwdflat off saves 100-300 ms at end of utterance.
        return Decoder(samprate=sample_rate, fwdflat=False, maxhmmpf=3000, loglevel="FATAL")

    spare = [new_decoder() for _ in range(pool_size)]
    active: dict[int, object] = {}
    conn.send(("ok", "ready"))
    while True:
        try:
            msg = conn.recv()
        except (EOFError, OSError):
            return
        op = msg[0]
        if op == "stop":
            conn.send(("ok", None))
            return
        sid = msg[1]
        try:
            if op == "push":
                decoder = active.get(sid)
                if decoder is None:
                    decoder = spare.pop() if spare else new_decoder()
                    decoder.start_utt()
                    active[sid] = decoder
                decoder.process_raw(msg[2], False, False)
                text = None
                if msg[3]:
                    hyp = decoder.hyp()
                    text = clean(hyp.hypstr) if hyp is not None else ""
                conn.send(("ok", text))
            elif op == "finish":
                decoder = active.pop(sid, None)
                if decoder is None:  # nothing was pushed: an empty utterance
                    decoder = spare.pop() if spare else new_decoder()
                    decoder.start_utt()
                try:
                    conn.send(("ok", _final(decoder)))
                finally:
                    spare.append(decoder)
            elif op == "close":
                decoder = active.pop(sid, None)
                if decoder is not None:
                    decoder.end_utt()
                    spare.append(decoder)
                conn.send(("ok", None))
            else:
                conn.send(("error", f"unknown request {op!r}"))
        except Exception as exc:  # report and keep serving the other streams
            active.pop(sid, None)
            conn.send(("error", f"{type(exc).__name__}: {exc}"))
