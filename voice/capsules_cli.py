"""`somagent-voice capsules list|run|schedule|report`: benchmark capsules from the command line.

Runs go through the router the server would build (same environment: SOMAGENT_DATABASE_URL, the catalogue, the
local models), so results land in the same database the server reads, and a run stopped by ^C resumes with
`--resume RUN_ID`. `schedule` is the cron-style form of the server's nightly runs: it waits for each scheduled
time and runs every role's capsules (`--once`: run now and exit, for a crontab line).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
from pathlib import Path
from typing import Any

from router.capsules import Benchmarks, RunError
from router.capsules.schedule import Schedule
from router.modes import DeploymentMode
from router.roles import Role


def add_parser(sub: Any) -> None:
    cap = sub.add_parser("capsules", help="benchmark capsules: measure each model's quality, gate promotions")
    csub = cap.add_subparsers(dest="capsules_command", required=True)
    ls = csub.add_parser("list", help="the capsules (shipped and stored) and the roles they measure")
    ls.set_defaults(func=lambda a: _go(_list, a))
    run = csub.add_parser("run", help="run a role's capsules over its models (default: the role's candidates)")
    run.add_argument("--role", required=True, choices=[r.value for r in Role])
    run.add_argument("--mode", choices=[m.value for m in DeploymentMode],
                     help="whose profiles name the models (default: SOMAGENT_DEPLOYMENT_MODE)")
    run.add_argument("--models", help="comma-separated model names (default: the role's candidates in the mode)")
    run.add_argument("--capsule", help="only this capsule (by name)")
    run.add_argument("--seed", type=int, default=0)
    run.add_argument("--resume", metavar="RUN_ID", help="finish a stopped run: its done items are kept")
    run.add_argument("--json", action="store_true", help="print each run's summary as JSON, no progress bar")
    run.set_defaults(func=lambda a: _go(_run, a))
    sch = csub.add_parser("schedule", help="run every role's capsules on SOMAGENT_CAPSULES_SCHEDULE (cron-style)")
    sch.add_argument("--once", action="store_true", help="run now, once, and exit")
    sch.set_defaults(func=lambda a: _go(_schedule, a))
    rep = csub.add_parser("report", help="a role's runs as CSV or PDF")
    rep.add_argument("--role", required=True, choices=[r.value for r in Role])
    rep.add_argument("--since", type=float, default=0.0, help="epoch seconds")
    rep.add_argument("--output", required=True, type=Path, help="FILE.csv or FILE.pdf")
    rep.set_defaults(func=lambda a: _go(_report, a))


def _go(command: Any, args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        return asyncio.run(_with_benchmarks(command, args))
    except (RunError, ValueError) as exc:
        print(f"somagent-voice capsules: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("stopped; resume with --resume and the run id above", file=sys.stderr)
        return 130


async def _with_benchmarks(command: Any, args: argparse.Namespace) -> int:
    from router.defaults import build_default_router

    router = build_default_router(mode=getattr(args, "mode", None))
    await router.start(warm_speech=False)  # each measured model is started by the runner, once
    benchmarks = Benchmarks(router)
    try:
        await benchmarks.start(schedule=False)
        return await command(benchmarks, args)
    finally:
        await benchmarks.aclose()
        await router.aclose()


async def _list(b: Benchmarks, args: argparse.Namespace) -> int:
    for c in await b.library.all():
        print(f"{c.key:28} {c.kind:13} {len(c.items):3} items  roles: {', '.join(r.value for r in c.roles)}")
    return 0


def _progress(quiet: bool) -> tuple[Any, Any]:
    if quiet:
        return None, None
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                   TextColumn("{task.fields[item]}"))
    tasks: dict[str, Any] = {}

    def progress(model: str, item: str, done: int, total: int) -> None:
        key = "current"
        if key not in tasks:
            tasks[key] = bar.add_task("capsule", total=total, item="")
        bar.update(tasks[key], completed=done, total=total, item=f"{model}: {item}")
        if done == total:
            bar.remove_task(tasks.pop(key))

    return bar, progress


def _print_report(report: Any, as_json: bool) -> None:
    if as_json:
        print(json.dumps(report.to_dict()))
        return
    run = report.run
    print(f"run {run.id}: {run.capsule}@{run.version} ({run.role}, mode {run.mode}, seed {run.seed})")
    for name, s in sorted(report.summaries.items(), key=lambda kv: -kv[1].quality):
        p95 = s.metrics.get("latency_p95_ms")
        print(f"  {name:30} quality {s.quality:.3f}  p95 {p95 if p95 is not None else '-':>8} ms  "
              f"failures {s.failures}/{s.items}")


async def _run(b: Benchmarks, args: argparse.Namespace) -> int:
    bar, progress = _progress(args.json)
    role = Role(args.role)
    models = [m.strip() for m in args.models.split(",") if m.strip()] if args.models else None
    mode = DeploymentMode(args.mode) if args.mode else None
    if bar is not None:
        bar.start()
    try:
        if args.resume:
            row = await asyncio.to_thread(b.results.get_run, args.resume)
            if row is None:
                raise RunError(f"no run {args.resume!r}")
            capsule = await b.library.get(row.capsule, row.version)
            if capsule is None:
                raise RunError(f"capsule {row.capsule}@{row.version} of run {row.id} is not known here")
            reports = [await b.runner.run(capsule, role=Role(row.role), resume=row.id, progress=progress)]
        else:
            capsules = await b.library.for_role(role)
            if args.capsule:
                capsules = [c for c in capsules if c.name == args.capsule]
            if not capsules:
                raise RunError(f"no capsule measures role {role.value!r}" +
                               (f" under the name {args.capsule!r}" if args.capsule else ""))
            reports = []
            for c in capsules:
                reports.append(await b.runner.run(c, role=role, models=models, mode=mode, seed=args.seed,
                                                  progress=progress))
    finally:
        if bar is not None:
            bar.stop()
    for report in reports:
        _print_report(report, args.json)
    return 0


async def _schedule(b: Benchmarks, args: argparse.Namespace) -> int:
    if args.once:
        for report in await b.run_all():
            _print_report(report, False)
        return 0
    schedule = b.settings.schedule or Schedule.parse("nightly")
    print(f"capsules run {schedule.describe()}; ^C to stop")
    await b.run_on_schedule(schedule, lambda reports: [_print_report(r, False) for r in reports])
    return 0


async def _report(b: Benchmarks, args: argparse.Namespace) -> int:
    from router.capsules.report import csv_report, pdf_report

    runs = await asyncio.to_thread(b.results.runs, role=args.role, since=args.since, limit=10_000)
    if args.output.suffix.lower() == ".pdf":
        args.output.write_bytes(await asyncio.to_thread(pdf_report, runs, title=f"Capsule runs: {args.role}"))
    else:
        args.output.write_text(csv_report(runs))
    print(f"{len(runs)} runs -> {args.output}")
    return 0
