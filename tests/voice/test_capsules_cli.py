"""voice/capsules_cli.py: `somagent-voice capsules run` measures a role's models and stores the run in the
server's database; `capsules report` writes it out; a run to resume that does not exist is a clear error."""

from __future__ import annotations

import csv
import json

from voice.cli import main


def test_run_then_report(tmp_path, monkeypatch, capsys):  # noqa: ANN001
    monkeypatch.setenv("SOMAGENT_DATABASE_URL", f"sqlite:///{tmp_path / 'r.db'}")
    monkeypatch.setenv("SOMAGENT_STACK", "light")
    assert main(["capsules", "list"]) == 0
    assert "synthesis-en@1" in capsys.readouterr().out
    assert main(["capsules", "run", "--role", "speech_synthesis", "--mode", "test", "--json"]) == 0
    [line] = capsys.readouterr().out.strip().splitlines()
    run = json.loads(line)
    assert run["status"] == "done" and run["models"] == ["espeak-ng"] and run["capsule"] == "synthesis-en"
    espeak = run["summary"]["espeak-ng"]
    assert 2.0 < espeak["metrics"]["ovrl_mos"] < 4.5 and 1.0 < espeak["metrics"]["mos_lqo"] <= 4.64
    out = tmp_path / "report.csv"
    assert main(["capsules", "report", "--role", "speech_synthesis", "--output", str(out)]) == 0
    [row] = list(csv.DictReader(out.open()))
    assert row["run_id"] == run["id"] and row["model"] == "espeak-ng"
    assert main(["capsules", "run", "--role", "dialogue", "--resume", "nope"]) == 2
    assert "no run 'nope'" in capsys.readouterr().err
