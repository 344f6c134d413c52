"""What every bench section shares: paths, the run's sizes (Mode), its state (Bench), and a pipeline copy to time.

A section (accuracy.py, throughput.py, scaling.py) runs stage commands in a scratch
:class:`Pipeline` and records rows and notes in the :class:`Bench` it is given;
report.py turns a Bench into bench/BENCHMARKS.md and bench/results/.
"""
from __future__ import annotations

import copy
import json
import os
import shlex
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import yaml

ROOT = Path(__file__).resolve().parents[1]
DATASETS = ROOT.parent / "shared" / "datasets"
BENCH_DIR = Path(__file__).resolve().parent
SECTIONS = ("accuracy", "throughput", "scaling")  # the measuring sections, in the order a full run takes them
OURS = "reprotext (ours)"  # our system's name in the accuracy rows
NAMES = {"20ng": "20 Newsgroups", "r8": "R8", "r52": "R52", "imdb": "IMDb", "trec": "TREC-6"}
STAGES = ("prepare", "split", "tokenize", "embed", "pretrain", "train", "finetune", "evaluate")
SOURCE_STAGES = ("prepare", "split", "tokenize", "embed", "pretrain", "train", "evaluate")  # the source model's path
FILE_COLUMNS = {"text_column": "text", "label_column": "label", "split_column": "split"}


def measured_with(datasets) -> set[str]:
    """The datasets whose accuracy rows a run of ``datasets`` writes: R8, fine-tuned from 20NG, goes with 20NG."""
    return set(datasets) | ({"r8"} if "20ng" in datasets else set())


@dataclass
class Mode:
    """The sizes of one bench run (modes.py makes the full and the smoke one)."""

    smoke: bool
    budget_s: float
    params: dict  # params.yaml overrides applied to every pipeline copy
    datasets: tuple[str, ...]
    imdb_embed: dict  # embed overrides for IMDb (100k long documents)
    tfidf_c: tuple[float, ...]  # C of TF-IDF + LR
    svm_c: tuple[float, ...]  # C of the linear SVM over word n-grams
    char_svm_c: tuple[float, ...]  # C of the linear SVM over word + char n-grams
    cnb_alpha: tuple[float, ...]  # alpha of Complement NB
    fasttext_grid: tuple[tuple[int, float, int], ...]  # (epochs, lr, wordNgrams); searched as in fasttext_supervised
    tok_embed_args: list[str]
    train_overhead_args: list[str]
    predict_args: list[str]
    scale_base_docs: int | None  # None = the whole 20NG corpus
    scale_factors: tuple[int, ...]
    candidates: dict[str, dict]  # train-section overrides competing for "our best configuration"
    dataset_candidates: dict[str, dict[str, dict]]  # a dataset's own extra candidates
    scale_params: dict = field(default_factory=dict)  # params.yaml overrides of the scaling runs
    unlabeled_lines: int | None = None
    sections: tuple[str, ...] = SECTIONS


class Bench:
    """One bench run: its sizes, budget and scratch directory, and what each section measured."""

    def __init__(self, mode: Mode, out: Path, work: Path):
        self.mode, self.out, self.work = mode, out, work
        self.start = time.perf_counter()
        self.env = child_env(work / "mlflow.db")
        self.accuracy: list[dict] = []  # one row per (dataset, system)
        self.correct: dict[str, dict[str, list[bool]]] = {}  # dataset -> system -> right on each test document?
        self.stage_times: dict[str, dict] = {}  # dataset -> stage -> (s, GiB)
        self.notes: dict[str, list[str]] = {name: [] for name in SECTIONS}
        self.throughput: list[dict] = []
        self.scaling: list[dict] = []
        self.choice: dict[str, dict] = {}  # dataset -> {"candidates": {name: ...}, "chosen": name}
        self.best_train: dict = {}  # the chosen candidate's train overrides, once 20NG has chosen
        self.twenty_ng: Pipeline | None = None  # the 20NG copy, for the throughput section

    def left_s(self) -> float:
        return self.mode.budget_s - (time.perf_counter() - self.start)


def merge(base: dict, over: dict) -> dict:
    """``base`` with ``over`` merged in, dicts recursively."""
    out = copy.deepcopy(base)
    for k, v in over.items():
        out[k] = merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else copy.deepcopy(v)
    return out


@dataclass
class StageRun:
    seconds: float
    rss_gib: float
    ok: bool
    log: Path


class Pipeline:
    """A scratch copy of the pipeline (stages/, dvc.yaml, params.yaml) whose stage commands run one by one.

    Each stage runs exactly its ``cmd`` from dvc.yaml (what `dvc repro` would run), in a child
    process whose wall time and peak RSS (its VmHWM, polled) are measured.
    """

    def __init__(self, work: Path, overrides: dict, env: dict[str, str]):
        self.work = work
        work.mkdir(parents=True, exist_ok=True)
        shutil.copytree(ROOT / "stages", work / "stages", ignore=shutil.ignore_patterns("__pycache__"))
        shutil.copy(ROOT / "dvc.yaml", work / "dvc.yaml")
        self.params = merge(yaml.safe_load((ROOT / "params.yaml").read_text(encoding="utf-8")), overrides)
        self.write_params(self.params, work / "params.yaml")
        self.cmds = {name: s["cmd"] for name, s in yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"].items()}
        self.env = env

    @staticmethod
    def write_params(params: dict, path: Path) -> None:
        path.write_text(yaml.safe_dump(params, sort_keys=False), encoding="utf-8")

    def argv(self, stage: str, replace: dict[str, str] | None = None) -> list[str]:
        args = shlex.split(self.cmds[stage])
        assert args[0] == "python", self.cmds[stage]
        args[0] = sys.executable
        for flag, value in (replace or {}).items():
            if flag in args:
                args[args.index(flag) + 1] = value
            else:
                args += [flag, value]
        return args

    def run(self, stage: str, replace: dict[str, str] | None = None, tag: str = "") -> StageRun:
        log = self.work / f"{stage}{tag}.log"
        start = time.perf_counter()
        with open(log, "wb") as out:
            proc = subprocess.Popen(self.argv(stage, replace), cwd=self.work, env=self.env, stdout=out, stderr=out)
            status, peak_kib = wait_peak_rss(proc.pid)
        run = StageRun(time.perf_counter() - start, peak_kib / 2**20, os.waitstatus_to_exitcode(status) == 0, log)
        print(f"  {self.work.name}/{stage}{tag}: {run.seconds:.1f} s, {run.rss_gib:.2f} GiB"
              f"{'' if run.ok else ' FAILED'}", flush=True)
        return run

    def must(self, stage: str, **kw) -> StageRun:
        run = self.run(stage, **kw)
        if not run.ok:
            raise RuntimeError(f"{self.work.name}: stage {stage} failed; last lines of {run.log}:\n"
                               + "\n".join(run.log.read_text(errors="replace").splitlines()[-15:]))
        return run

    def json(self, rel: str) -> dict:
        return json.loads((self.work / rel).read_text())


def wait_peak_rss(pid: int, every_s: float = 0.1) -> tuple[int, int]:
    """Wait for child ``pid``; return (wait status, its peak RSS in KiB).

    The peak is the child's own VmHWM, polled: ``ru_maxrss`` from wait4 would be at least this
    (large) process's RSS, which Linux carries over into a forked child across exec.
    """
    peak = 0
    while True:
        done, status, _ = os.wait4(pid, os.WNOHANG)
        if done:
            return status, peak
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    peak = max(peak, int(line.split()[1]))
        except (OSError, ValueError):  # exiting between the two calls
            pass
        time.sleep(every_s)


def child_env(mlflow_db: Path) -> dict[str, str]:
    """The stages' environment: the venv first, one scratch MLflow store, no outer DVC experiment."""
    env = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_TRACKING_URI", "DVC_ROOT", "DVC_EXP_NAME")}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["MLFLOW_TRACKING_URI"] = f"sqlite:///{mlflow_db}"
    env["DVC_NO_ANALYTICS"] = "1"
    # The `stages` package and the library of this checkout, whatever the cwd (not an editable install elsewhere).
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(ROOT / "src")])
    return env


# ---------------------------------------------------------------------------------------------- datasets


def file_source(key: str, tmp: Path, mode: Mode) -> tuple[Path, Path | None] | None:
    """(labelled table with a train/test split column, unlabeled .txt or None) for IMDb/TREC, or None if absent."""
    folder = DATASETS / key
    names = {"imdb": ("train.csv.xz", "test.csv.xz"), "trec": ("train.csv", "test.csv")}[key]
    if not all((folder / n).is_file() for n in names):
        return None
    frames = []
    for name, split in zip(names, ("train", "test")):
        df = pd.read_csv(folder / name)
        frames.append(pd.DataFrame({"text": df["text"].astype(str), "label": df["label"].astype(str), "split": split}))
    table = tmp / f"{key}.parquet"
    pd.concat(frames, ignore_index=True).to_parquet(table, index=False)
    unlabeled = None
    if key == "imdb" and (folder / "unsup.txt.xz").is_file():
        unlabeled = folder / "unsup.txt.xz"
        if mode.unlabeled_lines:
            import lzma

            with lzma.open(unlabeled, "rt", encoding="utf-8") as f:
                head = [next(f) for _ in range(mode.unlabeled_lines)]
            unlabeled = tmp / "imdb-unsup-head.txt"
            unlabeled.write_text("".join(head), encoding="utf-8")
    return table, unlabeled


def read_split(split_dir: Path) -> dict[str, pd.DataFrame]:
    return {s: pd.read_parquet(split_dir / f"{s}.parquet") for s in ("train", "dev", "test")}
