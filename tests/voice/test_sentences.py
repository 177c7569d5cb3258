"""voice/sentences.py: cutting the reply into pieces to speak, early and without losing any text."""

from voice.sentences import FIRST_PIECE_WORDS, SentenceSplitter


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


def test_text_with_nothing_to_break_at_is_still_cut_before_the_reply_ends():
    """SmolLM2 answered "10 of clubs" with 200 digits and no space: the first audio waited 4.5 s for all of it."""
    s = SentenceSplitter()
    digits = "10." + "0" * 400
    out = []
    for i in range(0, len(digits), 3):
        out += s.feed(digits[i:i + 3])
    # the first piece cut outright at 24 characters, later ones at the hard limit, while it streams
    assert [len(p) for p in out][:3] == [24, 160, 160]
    out += s.flush()
    assert "".join(out) == digits

    words = " ".join(["seven eight nine"] * 20)  # no punctuation, but spaces: cut at the last one
    s = SentenceSplitter()
    out = []
    for word in words.split(" "):
        out += s.feed(word + " ")
    assert out and all(p.endswith(("seven", "eight", "nine")) and len(p) <= 160 for p in out)
    out += s.flush()
    assert " ".join(out) == words


def test_a_long_first_sentence_gives_its_first_words_as_the_first_piece():
    s = SentenceSplitter(first_words=FIRST_PIECE_WORDS)
    out = []
    for token in ["I", "'m", " glad", " you", "'re", " happy", " with", " the", " response", ".", " I", " can", " help",
                  " with", " that", " and", " much", " more", " too", "."]:
        out += s.feed(token)
    out += s.flush()
    assert out == ["I'm glad you're happy with", "the response.", "I can help with that and much more too."]
    short = SentenceSplitter(first_words=FIRST_PIECE_WORDS)  # a first sentence of five words stays whole
    assert short.feed("The club is seven. ") == ["The club is seven."]
