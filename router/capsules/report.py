"""Reports of capsule runs per role and period: CSV (one row per run and model) and PDF (matplotlib's PDF
backend: a summary table, then per capsule the trend of each model's quality and p95 latency, drift marked
where a model's quality fell by more than the tolerance from its previous run)."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from router.store.benchmarks import RunRow

BASE_COLUMNS = ("run_id", "finished_at", "capsule", "version", "role", "mode", "purpose", "seed", "model",
                "quality", "items", "failures")


def rows(runs: Sequence[RunRow]) -> list[dict[str, Any]]:
    """Oldest first: one row per run and model, the model's metrics as columns."""
    out = []
    for run in sorted(runs, key=lambda r: r.started_at):
        for model, s in (run.summary or {}).items():
            out.append({"run_id": run.id, "finished_at": _iso(run.finished_at), "capsule": run.capsule,
                        "version": run.version, "role": run.role, "mode": run.mode, "purpose": run.purpose,
                        "seed": run.seed, "model": model, "quality": s["quality"], "items": s["items"],
                        "failures": s["failures"], "_ts": run.finished_at or run.started_at, **s["metrics"]})
    return out


def csv_report(runs: Sequence[RunRow]) -> str:
    table = rows(runs)
    metrics = sorted({k for r in table for k in r} - set(BASE_COLUMNS) - {"_ts"})
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=[*BASE_COLUMNS, *metrics], extrasaction="ignore")
    writer.writeheader()
    writer.writerows(table)
    return buf.getvalue()


def drift_points(series: Sequence[tuple[float, float]], tolerance: float) -> list[tuple[float, float]]:
    """The points where quality fell by more than `tolerance` from the point before."""
    return [b for a, b in zip(series, series[1:], strict=False) if a[1] - b[1] > tolerance]


def pdf_report(runs: Sequence[RunRow], *, title: str, tolerance: float = 0.05) -> bytes:
    import matplotlib

    matplotlib.use("Agg")  # no display; the PDF backend renders the pages
    from matplotlib import pyplot as plt
    from matplotlib.backends.backend_pdf import PdfPages

    table = rows(runs)
    buf = io.BytesIO()
    with PdfPages(buf, metadata={"Title": title, "Creator": "SomaGent Voice"}) as pdf:
        fig = plt.figure(figsize=(8.27, 11.69))  # A4 portrait
        fig.text(0.08, 0.95, title, fontsize=16, weight="bold")
        fig.text(0.08, 0.925, f"{len({r['run_id'] for r in table})} runs, generated "
                 f"{datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')}", fontsize=9)
        latest: dict[tuple[str, str], dict[str, Any]] = {}
        for r in table:
            latest[(r["capsule"], r["model"])] = r
        cells = [[c, m, f"{r['quality']:.3f}", _fmt(r.get("latency_p95_ms")), _fmt(r.get("cost_per_completion"), 6),
                  r["finished_at"][:16]] for (c, m), r in sorted(latest.items())]
        ax = fig.add_axes((0.05, 0.35, 0.9, 0.55))
        ax.axis("off")
        if cells:
            t = ax.table(cellText=cells, colLabels=["capsule", "model", "quality", "p95 ms", "cost/compl.", "last run"],
                         loc="upper center", cellLoc="left")
            t.auto_set_font_size(False)
            t.set_fontsize(8)
            t.scale(1, 1.4)
        else:
            ax.text(0.5, 0.9, "no runs in this period", ha="center")
        pdf.savefig(fig)
        plt.close(fig)
        for capsule in sorted({r["capsule"] for r in table}):
            fig, (q_ax, l_ax) = plt.subplots(2, 1, figsize=(8.27, 11.69), sharex=True)
            fig.suptitle(f"{capsule}: quality and p95 latency per model")
            for model in sorted({r["model"] for r in table if r["capsule"] == capsule}):
                pts = [r for r in table if r["capsule"] == capsule and r["model"] == model]
                xs = [datetime.fromtimestamp(p["_ts"], UTC) for p in pts]
                series = [(p["_ts"], float(p["quality"])) for p in pts]
                q_ax.plot(xs, [q for _, q in series], marker="o", label=model)
                drift = drift_points(series, tolerance)
                if drift:
                    q_ax.scatter([datetime.fromtimestamp(t, UTC) for t, _ in drift], [q for _, q in drift],
                                 marker="X", s=120, color="red", zorder=5)
                    for t, q in drift:
                        q_ax.annotate("drift", (datetime.fromtimestamp(t, UTC), q), textcoords="offset points",
                                      xytext=(6, -12), color="red", fontsize=8)
                lat = [p.get("latency_p95_ms") for p in pts]
                if any(v is not None for v in lat):
                    l_ax.plot(xs, [float("nan") if v is None else v for v in lat], marker=".", label=model)
            q_ax.set_ylabel("quality (0..1)")
            q_ax.set_ylim(0, 1.05)
            q_ax.legend(fontsize=8)
            q_ax.grid(alpha=0.3)
            l_ax.set_ylabel("p95 latency (ms)")
            l_ax.grid(alpha=0.3)
            fig.autofmt_xdate()
            pdf.savefig(fig)
            plt.close(fig)
    return buf.getvalue()


def _iso(ts: float | None) -> str:
    return "" if ts is None else datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds")


def _fmt(value: Any, digits: int = 0) -> str:
    return "" if value is None else f"{float(value):.{digits}f}"
