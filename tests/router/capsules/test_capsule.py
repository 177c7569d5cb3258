"""router/capsules/capsule.py: definitions validated once, with a reason for what is wrong; digests pin them."""

from __future__ import annotations

import pytest

from router.capsules.capsule import Capsule, CapsuleError, shipped_dir
from router.roles import Role

BASE = {"name": "c", "version": "1", "kind": "text", "items": [{"id": "a", "task": "qa", "prompt": "q",
                                                                "facts": ["x"]}]}


@pytest.mark.parametrize(("change", "message"), [
    ({"kind": "video"}, "kind"),
    ({"items": []}, "at least one item"),
    ({"name": "Bad Name"}, "name"),
    ({"items": [{"id": "a", "task": "qa", "prompt": "q"}]}, "needs `expected` answers or `facts`"),
    ({"items": [{"id": "a", "task": "summary", "prompt": "q"}]}, "needs `expected` references"),
    ({"items": [{"id": "a", "task": "tool_call", "prompt": "q"}]}, "needs `tools` and `expected_tool`"),
    ({"items": [{"id": "a", "task": "qa", "prompt": "q", "facts": ["x"]}] * 2}, "unique"),
    ({"items": [{"id": "a", "task": "qa", "prompt": "q", "facts": ["x"], "extra": 1}]}, "extra"),
    ({"kind": "transcription", "items": [{"id": "a", "audio": "nope.wav", "transcript": "t"}]}, "not found"),
])
def test_a_bad_definition_is_refused_with_its_reason(change, message, tmp_path):  # noqa: ANN001
    with pytest.raises(CapsuleError, match=message):
        Capsule.from_dict({**BASE, **change}, tmp_path)


def test_the_digest_follows_the_definition_and_roles_default_by_kind(tmp_path):  # noqa: ANN001
    a = Capsule.from_dict(BASE, tmp_path)
    b = Capsule.from_dict({**BASE, "items": [{**BASE["items"][0], "facts": ["y"]}]}, tmp_path)
    assert a.digest != b.digest and a.digest == Capsule.from_dict(dict(BASE), tmp_path).digest
    assert a.roles == (Role.DIALOGUE,) and a.key == "c@1"


def test_a_shipped_transcription_capsule_finds_its_recordings():
    capsule = Capsule.load(shipped_dir() / "transcription-en.json")
    assert len(capsule.items) == 9 and all(capsule.audio_path(i).exists() for i in capsule.items)
