"""adapters/tts/espeak.py: espeak-ng speaks the text it is given, never reading it as options."""

import numpy as np

from adapters.tts.espeak import EspeakSynthesizer


async def test_espeak_reads_text_from_stdin_never_as_options():
    tts = EspeakSynthesizer()
    await tts.start()
    blocks = [b async for b in tts.synthesize("--help -v xx Hello there.")]
    audio = np.concatenate(blocks)
    assert len(audio) / tts.sample_rate > 1.0  # the whole line was spoken, options and all
    assert np.abs(audio).max() > 1000
    assert [b async for b in tts.synthesize("   ")] == []
