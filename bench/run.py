"""`make bench`: the pipeline against the published table and the peers, its throughput and its scaling.

One module per section, each readable alone and runnable alone (``--sections``):

1. accuracy.py: 20 Newsgroups, R8, R52, IMDb and TREC-6 on their official test sets, our best
   configuration (chosen on 20NG dev among its CANDIDATES) against TF-IDF + linear models,
   fastText and the published numbers (TARGETS: what we aim at).
2. throughput.py: each stage against the library it wraps (ratios measured in one run).
3. scaling.py: prepare .. train at 1x, 10x, 50x the 20NG corpus: wall time and peak RSS.
4. report.py: ``<out>/BENCHMARKS.md`` and ``<out>/results/{accuracy,throughput,scaling}.csv``
   (+ ``bench.json``), keeping the results of the sections this run skips.

The sizes of a run are in modes.py, the pipeline copy that the sections time in pipeline.py.

    .venv/bin/python bench/run.py [--smoke] [--out bench] [--budget-min 100] [--sections scaling [--scale-factors 1 10]]

``--smoke`` runs every code path on a few hundred documents (about 3 minutes);
``--sections report`` measures nothing and rebuilds BENCHMARKS.md from bench/results/.
"""
from __future__ import annotations

import argparse
import datetime as dt
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import accuracy
import report
import scaling
import throughput
from modes import full_mode, smoke_mode
from pipeline import BENCH_DIR, NAMES, SECTIONS, Bench

DATASETS = ("20ng", "trec", "r52", "imdb")  # the accuracy section's order: 20NG first, the others use its choice
# Minutes of budget a dataset needs to start; the throughput ratios take ~5 min.
NEED_S = {"20ng": 0, "r52": 480, "trec": 240, "imdb": 900}
THROUGHPUT_NEED_S = 240


def section(b: Bench, name: str, fn: Callable[[], None], min_left_s: float = 0.0) -> None:
    """Run one part of a section within the budget; a failure is a note in the report, not the end of the run."""
    if b.left_s() < min_left_s:
        b.notes.setdefault(name.split()[0], []).append(
            f"{name}: skipped, {max(b.left_s(), 0) / 60:.0f} min of the {b.mode.budget_s / 60:.0f}-min "
            f"budget left (needs ~{min_left_s / 60:.0f}).")
        print(f"skip {name}: budget", flush=True)
        return
    print(f"[{(time.perf_counter() - b.start) / 60:5.1f} min] {name}", flush=True)
    try:
        fn()
    except Exception as exc:  # one failed section must not lose the others; the table says what failed
        import traceback

        traceback.print_exc()
        b.notes.setdefault(name.split()[0], []).append(f"{name}: FAILED: {str(exc).strip()[:500]}")


def run_sections(b: Bench) -> None:
    """20NG first (the others use its chosen config), then the throughput ratios (they need its copy), then the
    other datasets, cheapest first; scaling gets what is left of the budget."""
    sections, datasets = b.mode.sections, b.mode.datasets
    acc = accuracy.Accuracy(b)
    if "20ng" in datasets and ("accuracy" in sections or "throughput" in sections):
        if "accuracy" in sections:
            section(b, f"accuracy {NAMES['20ng']}", lambda: acc.dataset("20ng"))
        else:  # only for the throughput section's sake: the kept accuracy results stay as they are
            kept = (b.accuracy, b.choice, b.stage_times, b.notes["accuracy"], b.correct)
            b.accuracy, b.choice, b.stage_times, b.notes["accuracy"], b.correct = [], {}, {}, [], {}
            section(b, f"accuracy {NAMES['20ng']} (for the throughput section)", lambda: acc.dataset("20ng"))
            b.notes["throughput"] += b.notes["accuracy"]
            b.accuracy, b.choice, b.stage_times, b.notes["accuracy"], b.correct = kept
    if "throughput" in sections:
        if b.twenty_ng is not None:
            section(b, "throughput ratios", lambda: throughput.run(b), 0 if b.mode.smoke else THROUGHPUT_NEED_S)
        else:
            b.notes["throughput"].append("throughput: skipped, needs the 20NG pipeline run (not run or failed).")
    if "accuracy" in sections:
        need = {} if b.mode.smoke else NEED_S
        for key in (d for d in datasets if d != "20ng"):
            section(b, f"accuracy {NAMES[key]}", lambda k=key: acc.dataset(k), need.get(key, 0))
        for key, like in (("r52", "20NG's builtin path"), ("trec", "IMDb's file path")):
            if b.mode.smoke and key not in datasets:
                b.notes["accuracy"].append(f"{NAMES[key]}: not run in --smoke (the same code as {like}).")
    if "scaling" in sections:
        section(b, "scaling", lambda: scaling.run(b))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--smoke", action="store_true", help="every code path on tiny data (~3 min)")
    p.add_argument("--out", type=Path, default=BENCH_DIR, help="writes BENCHMARKS.md and results/ here")
    p.add_argument("--budget-min", type=float, default=None,
                   help="wall-clock budget in minutes (default 100, smoke 45)")
    p.add_argument("--keep", action="store_true", help="keep the scratch directory (its path is printed)")
    p.add_argument("--datasets", nargs="+", choices=list(NAMES), help="only these datasets (default: all of the mode; "
                   "without 20ng the others use params.yaml's train section, and R8 needs 20ng)")
    p.add_argument("--sections", nargs="+", choices=[*SECTIONS, "report"], default=list(SECTIONS),
                   help="only these sections, the others' results kept (default: all; report alone: measure nothing)")
    p.add_argument("--scale-factors", nargs="+", type=int, metavar="K",
                   help="the scaling section at these sizes only; the earlier run's rows of the other sizes are kept "
                        "(each row says when it was measured)")
    args = p.parse_args(argv)
    # The smoke run must take every code path, so its budget is only a backstop for a very busy machine.
    budget = args.budget_min or (45.0 if args.smoke else 100.0)
    mode = smoke_mode(budget) if args.smoke else full_mode(budget)
    if args.datasets:
        mode.datasets = tuple(d for d in DATASETS if d in args.datasets)
    mode.sections = tuple(s for s in SECTIONS if s in args.sections)
    if args.scale_factors and min(args.scale_factors) < 1:
        p.error(f"--scale-factors {min(args.scale_factors)}: each size is a number of copies of the corpus, 1 or more")
    if args.scale_factors:
        mode.scale_factors = tuple(sorted(set(args.scale_factors)))
    meta = {"command": "python bench/run.py " + " ".join(argv if argv is not None else sys.argv[1:]),
            "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"), "machine": report.machine()}
    work = Path(tempfile.mkdtemp(prefix="reprotext-bench-"))
    print(f"scratch: {work}", flush=True)
    bench = Bench(mode, args.out.resolve(), work)
    provenance = report.keep_earlier(bench)
    try:
        run_sections(bench)
    finally:
        meta["minutes"] = (time.perf_counter() - bench.start) / 60
        meta["load_avg_at_end"] = [round(x, 2) for x in os.getloadavg()]
        report.write(bench, meta, provenance)
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    print(f"wrote {args.out / 'BENCHMARKS.md'} in {meta['minutes']:.1f} min", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
