"""The seminar, demonstrated: one sweep of queued DVC experiments, read back from MLflow, one report.

``python -m reprotext.lecture`` (``make lecture``) copies the workspace's files
into a private repository (``.dvc/tmp/lecture/<sweep>``, sharing the DVC cache and
the MLflow store), reproduces the baseline there, queues the other experiments of
``lecture.yaml`` on top of it with ``dvc exp run --queue`` (they share the
baseline's prepare/split/tokenize/embed outputs wherever their params agree),
runs them ``jobs`` at a time, reads every result back from MLflow (a parent run
per experiment, a child run per stage) and writes ``reports/lecture.md`` with its
figures in ``reports/lecture/``.

The workspace, its params.yaml, dvc.lock, outputs and git refs stay as they
were. ``--collect SWEEP`` rewrites the report from an earlier sweep's runs
without running anything.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import yaml

from reprotext.errors import ReprotextError
from reprotext.lecture.plan import PLAN_FILE, load_plan
from reprotext.lecture.report import code_commit, write_report
from reprotext.lecture.sweep import collect, run_sweep, threads
from reprotext.tracking import project_root

log = logging.getLogger("reprotext.lecture")
REPORT = Path("reports/lecture.md")
SWEEP_FILE = "sweep.json"  # the sweep's id, size, timing and statuses, beside the report's figures


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m reprotext.lecture", description=__doc__.split("\n\n")[0])
    p.add_argument("--size", default="default", help="a size of lecture.yaml: smoke, default, big (default: %(default)s)")
    p.add_argument("--smoke", action="store_true", help="the same as --size smoke: the test's tiny sweep")
    p.add_argument("--plan", default=PLAN_FILE, help="the sweep definition (default: %(default)s)")
    p.add_argument("--jobs", type=int, help="parallel queue workers (default: the size's)")
    p.add_argument("--collect", metavar="SWEEP", help="only rewrite the report from the runs of this earlier sweep")
    p.add_argument("--timeout", type=float, default=4 * 3600, help="seconds the sweep may take (default: %(default)s)")
    p.add_argument("--report", default=str(REPORT), help="the markdown file to write (default: %(default)s)")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    root = project_root()
    size = "smoke" if args.smoke else args.size
    report = root / args.report
    figures = report.parent / report.stem
    try:
        plan = load_plan(root / args.plan, size, yaml.safe_load((root / "params.yaml").read_text(encoding="utf-8")))
        meta: dict[str, Any] = {}
        if args.collect:
            sweep_id, status = args.collect, None
            meta_path = figures / SWEEP_FILE
            if meta_path.is_file() and json.loads(meta_path.read_text()).get("sweep") == sweep_id:
                meta = json.loads(meta_path.read_text())
                status = meta.get("status")
        else:
            sweep_id = "lec-" + datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S")
            started = datetime.now(timezone.utc)
            commit, dirty = code_commit(root, report, figures)
            t0 = time.monotonic()
            log.info("sweep %s: %d experiments (size %s) on %d workers", sweep_id, len(plan.experiments), size,
                     args.jobs or plan.jobs)
            status = run_sweep(root, plan, sweep_id, args.jobs or plan.jobs, args.timeout)
            meta = {"sweep": sweep_id, "size": size, "commit": commit, "dirty": dirty,
                    "started": started.isoformat(timespec="seconds"),
                    "seconds": round(time.monotonic() - t0, 1), "jobs": args.jobs or plan.jobs,
                    "cores": os.cpu_count(), "threads": threads(args.jobs or plan.jobs).get(
                        "OMP_NUM_THREADS", os.environ.get("OMP_NUM_THREADS", "default")), "status": status}
            figures.mkdir(parents=True, exist_ok=True)
            (figures / SWEEP_FILE).write_text(json.dumps(meta, indent=2) + "\n")
        sweep = collect(root, sweep_id, plan, status)
        sweep.meta = meta
        write_report(sweep, report, figures)
        print(f"wrote {report} ({sum(r.ok for r in sweep.results.values())} of "
              f"{len(sweep.results)} experiments)")
        failed = [r.dvc_name for r in sweep.results.values() if not r.ok]
        if failed:
            raise ReprotextError(f"experiments without results: {', '.join(failed)} (see `dvc queue logs <name>`)")
    except ReprotextError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()