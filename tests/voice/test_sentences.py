"""voice/sentences.py: cutting the reply into pieces to speak, early and without losing any text."""

from voice.sentences import SentenceSplitter


def test_sentence_splitter_cuts_early_and_keeps_everything():
    s = SentenceSplitter(soft_break_chars=40)
    text = "Hi there. This is a rather long clause, which keeps going for a while, and ends here! Tail"
    out = []
    for ch in text:
        out += s.feed(ch)
    out += s.flush()
    assert out[0] == "Hi there."
    assert " ".join(out) == text
    assert all(len(p) < 60 for p in out)


def test_sentence_splitter_first_piece_ends_at_first_soft_break():
    s = SentenceSplitter()
    out = []
    for word in "I heard: eight of spades, four of clubs. Then more, and more.".split(" "):
        out += s.feed(word + " ")
    out += s.flush()
    assert out == ["I heard:", "eight of spades, four of clubs.", "Then more, and more."]
