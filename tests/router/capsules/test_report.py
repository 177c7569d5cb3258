"""router/capsules/report.py: the CSV has a row per run and model; the PDF renders (its pages looked at as
images), drift marked; both come from the API for a role and period."""

from __future__ import annotations

import csv
import io

import numpy as np
import pypdfium2

from router.capsules.report import drift_points, pdf_report
from router.roles import Role
from tests.router.capsules.conftest import ADMIN_KEY, guesses

AUTH = {"Authorization": f"Bearer {ADMIN_KEY}"}


async def test_reports_of_a_role_and_period(client, benchmarks, capsule, fake_chat, clock):  # noqa: ANN001
    await benchmarks.runner.run(capsule, role=Role.DIALOGUE)
    clock.advance(86400)
    fake_chat.answer("oracle", guesses)
    await benchmarks.runner.run(capsule, role=Role.DIALOGUE)
    got = await client.get("/v1/router/reports.csv", params={"role": "dialogue"}, headers=AUTH)
    assert got.status_code == 200 and got.headers["content-type"].startswith("text/csv")
    table = list(csv.DictReader(io.StringIO(got.text)))
    assert [(r["model"], r["capsule"]) for r in table] == [("weak", "quiz"), ("oracle", "quiz")] * 2
    assert float(table[1]["quality"]) > 0.9 > float(table[3]["quality"])  # the oracle's drop
    assert {"refusal_accuracy", "latency_p95_ms", "chrf", "seed", "version"} <= set(table[0])
    later = await client.get("/v1/router/reports.csv", headers=AUTH,
                             params={"role": "dialogue", "since": str(clock() - 3600)})
    assert len(list(csv.DictReader(io.StringIO(later.text)))) == 2  # the period: the second run alone
    empty = await client.get("/v1/router/reports.csv", params={"role": "code"}, headers=AUTH)
    assert empty.text.splitlines()[0].startswith("run_id,")  # a header, no rows
    pdf = await client.get("/v1/router/reports.pdf", params={"role": "dialogue"}, headers=AUTH)
    assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF")
    bad = await client.get("/v1/router/reports.pdf", params={"role": "dialogue", "since": "yesterday"},
                           headers=AUTH)
    assert bad.status_code == 422
    doc = pypdfium2.PdfDocument(pdf.content)
    try:
        assert len(doc) == 2  # the summary table, then the capsule's trends
        for index in range(len(doc)):
            page = doc[index].render(scale=1).to_numpy()
            ink = (page[..., :3] < 128).all(axis=-1).mean()
            assert page.shape[0] > page.shape[1] > 500 and 0.001 < ink < 0.5  # A4, with text and plot lines
        trend = doc[1].render(scale=1, rev_byteorder=True).to_numpy()[..., :3].astype(int)
        red = (trend[..., 0] > 200) & (trend[..., 1] < 80) & (trend[..., 2] < 80)
        assert red.sum() > 50  # the drift marker
        text = doc[1].get_textpage().get_text_range()
        assert "drift" in text and "oracle" in text
    finally:
        doc.close()


def test_drift_is_a_fall_beyond_the_tolerance():
    series = [(1.0, 0.9), (2.0, 0.88), (3.0, 0.7), (4.0, 0.72)]
    assert drift_points(series, 0.05) == [(3.0, 0.7)]


def test_an_empty_period_still_renders():
    pdf = pdf_report([], title="nothing")
    doc = pypdfium2.PdfDocument(pdf)
    try:
        assert len(doc) == 1 and np.asarray(doc[0].render().to_numpy()).size > 0
    finally:
        doc.close()
