"""The scaling section of `make bench`: the source model's stages at 1x, 10x and 50x the 20NG corpus.

The builtin 20NG corpus is copied k times (copy j of a document ends in ``xj``, so that
de-duplication keeps it) into a user Parquet file; the stages prepare .. train run on it as
child processes (each stage's command from dvc.yaml), with their wall time and peak RSS. A
stage whose predicted time (extrapolated from the smaller sizes) overruns the budget, or whose
predicted memory would not fit, is not run, and the table says so. The sizes and the cheaper
params of these runs (SCALE_PARAMS) are in modes.py.

    .venv/bin/python bench/run.py --sections scaling [--budget-min 150] [--scale-factors 1 10]
"""
from __future__ import annotations

import datetime as dt
import math
import shutil
from pathlib import Path

import pandas as pd

from pipeline import DATASETS, FILE_COLUMNS, SOURCE_STAGES, Bench, Pipeline, file_source, merge

STAGES = SOURCE_STAGES[:-1]  # prepare .. train: the source model's path, less evaluate


def run(b: Bench) -> None:
    """Time each stage of :data:`STAGES` at each of ``b.mode.scale_factors``, recording rows in ``b.scaling``."""
    from reprotext.data.sources import read_builtin

    m = b.mode
    news = read_builtin("20newsgroups")[["text", "label"]]
    if m.scale_base_docs:  # the same number per class: a stratified split needs a few of each
        news = news.groupby("label").sample(n=m.scale_base_docs // news["label"].nunique(), random_state=0)
    trec = file_source("trec", b.work, m) if (DATASETS / "trec").is_dir() else None
    target = str(trec[0]) if trec else "builtin:reuters-r8"
    prev: dict[str, list[tuple[int, float, float]]] = {}  # stage -> [(factor, seconds, GiB)] of the sizes run
    for r in sorted(b.scaling, key=lambda r: int(r["factor"])):  # rows kept from an earlier run (--scale-factors)
        if r.get("seconds") is not None and int(r["factor"]) < min(m.scale_factors):
            prev.setdefault(r["stage"], []).append((int(r["factor"]), float(r["seconds"]), float(r["peak_rss_gib"])))
    measured = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    stages = STAGES
    for factor in m.scale_factors:
        # Copy k of each document ends in " x<k>" so that prepare's de-duplication keeps it. The copies
        # land in all three splits: the accuracy of these runs means nothing, only time and memory.
        table = b.work / f"scale-{factor}x.parquet"
        pd.DataFrame({"text": [t if k == 0 else f"{t} x{k}" for k in range(factor) for t in news["text"]],
                      "label": list(news["label"].astype(str)) * factor}).to_parquet(table, index=False)
        mb = table.stat().st_size / 1e6
        over = merge(m.params, {"prepare": {**FILE_COLUMNS, "split_column": None, "source": str(table),
                                            "target": target, "max_docs": None},
                                "split": {"method": "stratified", "train": 0.7, "dev": 0.2, "test": 0.1}})
        pipe = Pipeline(b.work / f"scale-{factor}x", merge(over, m.scale_params), b.env)
        skipped_from: dict[str, str] = {}
        for stage in stages:
            reason = skipped_from.get(stage)
            if reason is None and stage in prev:
                secs = _extrapolate(prev[stage], factor, 1)
                # Memory is mostly fixed at small sizes (Python, torch): growth needs two sizes to be told apart.
                gib = _extrapolate(prev[stage], factor, 2) if len(prev[stage]) > 1 else 0.0
                if secs > b.left_s() - 60:
                    reason = (f"predicted {secs:.0f} s (from {', '.join(f'{f}x' for f, _, _ in prev[stage])}) > "
                              f"{max(b.left_s() - 60, 0):.0f} s left in the budget")
                elif gib > 0.7 * _mem_available_gib():
                    reason = f"predicted peak RSS {gib:.1f} GiB > 70% of the memory available"
            if reason is not None:
                skipped_from.update({s: f"{reason} ({stage} not run)" if s != stage else reason
                                     for s in stages[stages.index(stage):] if s not in skipped_from})
                b.scaling.append({"factor": factor, "docs": len(news) * factor, "stage": stage,
                                  "skipped": skipped_from[stage], "measured": measured})
                continue
            run = pipe.run(stage)
            if not run.ok:
                reason = "failed: " + " | ".join(run.log.read_text(errors="replace").strip().splitlines()[-2:])
                skipped_from.update({s: f"{stage} at {factor}x failed" for s in stages[stages.index(stage) + 1:]})
                b.scaling.append({"factor": factor, "docs": len(news) * factor, "stage": stage,
                                  "skipped": reason[:300], "measured": measured})
                continue
            row = {"factor": factor, "docs": len(news) * factor, "input_mb": round(mb, 1), "stage": stage,
                   "seconds": run.seconds, "peak_rss_gib": run.rss_gib, "measured": measured}
            if stage in prev:
                f0, s0, g0 = prev[stage][-1]
                row["time_growth"] = run.seconds / s0
                row["time_exponent"] = math.log(run.seconds / s0) / math.log(factor / f0)
                row["rss_growth"] = run.rss_gib / g0
            b.scaling.append(row)
            prev.setdefault(stage, []).append((factor, run.seconds, run.rss_gib))
        shutil.rmtree(pipe.work, ignore_errors=True)  # 50x leaves GBs behind
        table.unlink()


def _extrapolate(points: list[tuple[int, float, float]], factor: int, i: int) -> float:
    """Value ``i`` of ``points`` [(factor, seconds, GiB)] at ``factor``: affine from the last two, else proportional."""
    if len(points) == 1:
        return points[0][i] * factor / points[0][0]
    (f0, *a), (f1, *b) = points[-2], points[-1]
    slope = (b[i - 1] - a[i - 1]) / (f1 - f0)
    return b[i - 1] + slope * (factor - f1)


def _mem_available_gib() -> float:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) / 2**20
    return 8.0


if __name__ == "__main__":  # the same as `bench/run.py --sections scaling ...`
    import sys

    import run

    sys.exit(run.main(["--sections", "scaling", *sys.argv[1:]]))
