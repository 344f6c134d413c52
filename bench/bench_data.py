"""Benchmark the data half of the pipeline: prepare + split of 1,000,000 short documents.

The documents are 16-word windows of the builtin 20 Newsgroups corpus, cycled
to the requested count, each with a distinguishing suffix so that none is a
duplicate. The stage scripts run as child processes in a scratch copy of the
pipeline (own params.yaml and MLflow store); each one's wall time and peak RSS
(``os.wait4``) are measured.

    .venv/bin/python bench/bench_data.py [--docs 1000000] [--format csv]
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import yaml

from reprotext.data.sources import read_builtin

ROOT = Path(__file__).resolve().parents[1]
BUDGET_S = 60.0
BUDGET_RSS_GIB = 3.0
WINDOW = 16


def make_corpus(n: int) -> pd.DataFrame:
    """``n`` short labelled documents replicated from 20 Newsgroups, all distinct."""
    news = read_builtin("20newsgroups")
    texts, labels = [], []
    for text, label in zip(news["text"], news["label"]):
        words = text.split()
        for i in range(0, len(words), WINDOW):
            texts.append(" ".join(words[i:i + WINDOW]))
            labels.append(label)
    reps = -(-n // len(texts))
    return pd.DataFrame({"text": [f"{t} doc{i}" for i, t in enumerate((texts * reps)[:n])],
                         "label": (labels * reps)[:n]})


def run_stage(args: list[str], cwd: Path) -> tuple[float, float]:
    """Run one stage module; return its wall seconds and peak RSS in GiB."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}  # `-m stages.<name>` from the scratch directory
    log = cwd / f"{args[0]}.log"
    start = time.perf_counter()
    with open(log, "wb") as err:
        proc = subprocess.Popen([sys.executable, "-m", *args], cwd=cwd, env=env, stdout=err, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"{args[0]} failed:\n{log.read_text()}")
    return seconds, usage.ru_maxrss / 2**20  # ru_maxrss is in KiB on Linux


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--docs", type=int, default=1_000_000)
    p.add_argument("--format", choices=("csv", "parquet", "jsonl"), default="csv")
    args = p.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-data-") as tmp:
        work = Path(tmp)
        corpus = make_corpus(args.docs)
        data = work / f"corpus.{args.format}"
        {"csv": lambda: corpus.to_csv(data, index=False), "parquet": lambda: corpus.to_parquet(data, index=False),
         "jsonl": lambda: corpus.to_json(data, orient="records", lines=True, force_ascii=False)}[args.format]()
        params = yaml.safe_load((ROOT / "params.yaml").read_text(encoding="utf-8"))
        params["prepare"]["source"] = str(data)
        (work / "params.yaml").write_text(yaml.safe_dump(params), encoding="utf-8")
        shutil.copy(ROOT / "dvc.yaml", work / "dvc.yaml")  # marks the pipeline root for tracking
        os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{work / 'mlflow.db'}"
        stages = {
            "prepare": ["stages.prepare", "--source-out", "data/prepared/source.parquet",
                        "--target-out", "data/prepared/target.parquet", "--unlabeled-out",
                        "data/prepared/unlabeled.parquet", "--metrics", "metrics/prepare.json"],
            "split": ["stages.split", "--prepared", "data/prepared", "--out", "data/split",
                      "--report", "reports/data", "--metrics", "metrics/split.json"],
        }
        results = {name: run_stage(cmd, work) for name, cmd in stages.items()}
    total = sum(s for s, _ in results.values())
    peak = max(r for _, r in results.values())
    print(f"| docs | format | prepare s | split s | total s | peak RSS GiB |\n|---:|---|---:|---:|---:|---:|\n"
          f"| {args.docs:,} | {args.format} | {results['prepare'][0]:.1f} | {results['split'][0]:.1f} | "
          f"{total:.1f} | {peak:.2f} |")
    ok = total < BUDGET_S and peak < BUDGET_RSS_GIB
    print(f"{'within' if ok else 'OVER'} budget ({BUDGET_S:.0f} s, {BUDGET_RSS_GIB:.0f} GiB)")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
