"""Running a lecture sweep as queued DVC experiments in a private copy of the repository, and reading it back.

:func:`run_sweep` reproduces the baseline in the sweep's copy and queues the
other experiments on top of it; :func:`collect` reads every experiment back from
MLflow (a parent run per experiment, a child run per stage); :func:`download` and
:func:`output_file` fetch what an experiment's stages logged or wrote.
"""
from __future__ import annotations

import json
import logging
import math
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from reprotext.errors import ConfigError, ReprotextError
from reprotext.lecture.plan import Experiment, Plan, _value
from reprotext.tracking import EXPERIMENT, TAG_PARENT, TAG_STAGE, redact, tracking_uri

log = logging.getLogger(__name__)
DONE = ("Success", "Failed")


def _env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """This process's environment with the venv's tools first (stage commands call ``python``)."""
    out = {k: v for k, v in os.environ.items() if k not in ("DVC_EXP_NAME", "DVC_ROOT")}
    out["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{out.get('PATH', '')}"
    out.setdefault("DVC_NO_ANALYTICS", "1")
    return {**out, **(extra or {})}


def _sh(args: list[str], root: Path, check: bool = True, env: dict[str, str] | None = None) -> str:
    proc = subprocess.run(args, cwd=root, env=_env(env), capture_output=True, text=True)
    if check and proc.returncode:
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-15:])
        raise ReprotextError(f"`{' '.join(args)}` failed ({proc.returncode}) in {root}:\n{tail}")
    return proc.stdout


def ensure_store(root: Path) -> str:
    """Create the MLflow store and experiment now, before parallel workers race to create the SQLite schema."""
    from reprotext.tracking import Tracker

    return Tracker("lecture", root).uri


def queue_status(root: Path) -> dict[str, str]:
    """``dvc queue status``: experiment name -> status (Queued, Running, Success, Failed)."""
    out = {}
    for line in _sh(["dvc", "queue", "status"], root, check=False).splitlines():
        words = line.split()
        if len(words) >= 3 and words[-1] in ("Queued", "Running", *DONE):
            out[words[1]] = words[-1]
    return out


def _wait(root: Path, names: list[str], deadline: float, poll: float = 5.0) -> dict[str, str]:
    seen: dict[str, str] = {}
    while True:
        status = queue_status(root)
        mine = {n: status.get(n, "missing") for n in names}
        for name, s in mine.items():
            if s in DONE and name not in seen:
                seen[name] = s
                log.info("%s: %s (%d of %d done)", name, s, len(seen), len(names))
        if all(s in DONE for s in mine.values()):
            return mine
        if time.monotonic() > deadline:
            raise ReprotextError(f"the sweep ran out of time; still busy: "
                                 f"{', '.join(n for n, s in mine.items() if s not in DONE)} (see `dvc queue status`)")
        time.sleep(poll)


def set_params(path: Path, overrides: dict[str, Any]) -> None:
    """Apply dotted-key overrides (``train.rnn.hidden_size``) to a params file."""
    params = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    for key, value in overrides.items():
        node = params
        for part in key.split(".")[:-1]:
            if not isinstance(node.get(part), dict):
                raise ConfigError(f"lecture override {key}: params.yaml has no section {part!r} there")
            node = node[part]
        node[key.rsplit(".", 1)[-1]] = value
    path.write_text(yaml.safe_dump(params, sort_keys=False), encoding="utf-8")


def sweep_dir(root: Path, sweep: str) -> Path:
    """Where a sweep's private copy of the repository lives (its experiment refs stay there)."""
    return root / ".dvc" / "tmp" / "lecture" / sweep


def make_copy(root: Path, dest: Path, baseline: Experiment, sweep: str) -> None:
    """A git repository at ``dest`` holding the workspace's files (committed or not) with the baseline's params.

    It shares the workspace's DVC cache. The sweep runs there, so the workspace,
    its dvc.lock and its git refs stay as they were; and the baseline is reproduced
    there with a plain ``dvc repro``, so every queued experiment starts from a
    dvc.lock whose outputs are in the cache.
    """
    files = _sh(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], root).split("\0")
    for rel in filter(None, files):
        src = root / rel
        if src.is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)
    set_params(dest / "params.yaml", baseline.overrides)
    git = ["git", "-c", "user.email=lecture@localhost", "-c", "user.name=reprotext lecture"]
    _sh(["git", "init", "-q", "-b", "lecture"], dest)
    _sh(["git", "add", "-A"], dest)
    _sh([*git, "commit", "-qm", f"lecture sweep {sweep}: the baseline's params"], dest)
    _sh(["dvc", "cache", "dir", "--local", str(cache_dir(root))], dest)


def threads(jobs: int) -> dict[str, str]:
    """OMP/MKL threads per experiment when ``jobs`` run at once: the cores shared out, unless the user chose."""
    if "OMP_NUM_THREADS" in os.environ:
        return {}
    n = str(max(1, (os.cpu_count() or 1) // max(jobs, 1)))
    return {"OMP_NUM_THREADS": n, "MKL_NUM_THREADS": n}


def run_sweep(root: Path, plan: Plan, sweep: str, jobs: int, timeout: float) -> dict[str, str]:
    """Run every experiment of ``plan``; returns the final status per DVC experiment name.

    The baseline is a plain ``dvc repro`` in the sweep's copy (tracked in MLflow under its experiment name),
    committed there; the others are queued experiments on top of it, ``jobs`` at a time.
    """
    env = {"MLFLOW_TRACKING_URI": ensure_store(root)}  # one store: the workspace's (or the team's server)
    deadline = time.monotonic() + timeout
    first, rest = plan.experiments[0], plan.experiments[1:]
    copy = sweep_dir(root, sweep)
    copy.mkdir(parents=True)
    make_copy(root, copy, first, sweep)
    status = {}
    try:
        log.info("%s: dvc repro in %s", first.dvc_name(sweep), copy)
        # Its progress streams to this process's stderr: the first run of every stage takes the longest.
        repro = subprocess.run(["dvc", "repro"], cwd=copy, env=_env({**env, "DVC_EXP_NAME": first.dvc_name(sweep)}),
                               stdout=sys.stderr)
        if repro.returncode:
            raise ReprotextError(f"`dvc repro` of the baseline failed ({repro.returncode}) in {copy}")
        _sh(["git", "add", "-A"], copy)
        _sh(["git", "-c", "user.email=lecture@localhost", "-c", "user.name=reprotext lecture", "commit", "-qm",
             f"lecture sweep {sweep}: the baseline reproduced"], copy)
        status[first.dvc_name(sweep)] = "Success"
    except ReprotextError as exc:
        log.error("the baseline failed; no experiment can run without it:\n%s", exc)
        return {e.dvc_name(sweep): "Failed" if e is first else "not run" for e in plan.experiments}
    log.info("%s: Success", first.dvc_name(sweep))
    for exp in rest:
        args = ["dvc", "exp", "run", "--queue", "-n", exp.dvc_name(sweep)]
        for key, value in exp.overrides.items():
            args += ["-S", f"{key}={_value(value)}"]
        _sh(args, copy, env=env)
    if rest:
        # Not through pipes: the workers it starts would hold them open, and this call would wait for the whole queue.
        # Each experiment gets its share of the cores: more threads than cores make every one of them slower.
        start = subprocess.run(["dvc", "queue", "start", "-j", str(jobs)], cwd=copy, env=_env({**env, **threads(jobs)}),
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if start.returncode:
            raise ReprotextError(f"`dvc queue start -j {jobs}` failed ({start.returncode}) in {copy}")
        status.update(_wait(copy, [e.dvc_name(sweep) for e in rest], deadline))
        _sh(["dvc", "queue", "stop"], copy, check=False)  # the idle workers go too
    for name, s in status.items():
        if s != "Success":
            tail = _sh(["dvc", "queue", "logs", name], copy, check=False).strip().splitlines()[-15:]
            log.error("experiment %s: %s\n%s", name, s, "\n".join(tail))
    return status


# ---------------------------------------------------------------- reading results back


@dataclass
class Result:
    """One experiment as MLflow and DVC recorded it."""

    exp: Experiment
    dvc_name: str
    status: str
    parent: str | None = None  # the MLflow parent run id
    parent_status: str = ""  # FINISHED once its last stage ran; FAILED when a stage failed
    metrics: dict[str, float] = field(default_factory=dict)  # the parent's: "<stage>/<key>"
    runs: dict[str, str] = field(default_factory=dict)  # stage -> the MLflow run that produced its outputs
    ran: dict[str, str] = field(default_factory=dict)  # stage -> its run, for the stages run in this experiment
    train: dict[str, float] = field(default_factory=dict)  # the train run's own summary metrics
    history: pd.DataFrame | None = None  # the train run's per-epoch metrics (with time/elapsed_seconds)
    rev: str | None = None  # the experiment's git commit (refs/exps/...)

    @property
    def ok(self) -> bool:
        """Complete: DVC finished it (when known) and so did its MLflow parent.

        A queued experiment starts from the baseline's commit, metrics files included: until its own stages have
        run, its parent run also carries the baseline's numbers. Only a finished experiment's numbers are its own.
        """
        return (self.parent is not None and self.parent_status == "FINISHED" and self.status in ("Success", "recorded")
                and "train/best_epoch" in self.metrics)

    def m(self, key: str, default: float = float("nan")) -> float:
        return self.metrics.get(key, default)

    def best_row(self) -> pd.Series | None:
        if self.history is None or "train/best_epoch" not in self.metrics:
            return None
        rows = self.history[self.history["epoch"] == int(self.metrics["train/best_epoch"])]
        return rows.iloc[0] if len(rows) else None


@dataclass
class Sweep:
    sweep: str
    plan: Plan
    uri: str
    root: Path
    results: dict[str, Result]
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def copy(self) -> Path:
        """The sweep's private repository: its commits and experiment refs."""
        return sweep_dir(self.root, self.sweep)

    def ok(self, *names: str) -> bool:
        return all(n in self.results and self.results[n].ok for n in names)

    def __getitem__(self, name: str) -> Result:
        return self.results[name]


def _history(client, run_id: str, keys: list[str]) -> pd.DataFrame:
    """Per-epoch metrics of a run: one row per step (epoch), one column per key logged at more than one step
    or at the same steps as the losses."""
    series = {}
    for key in keys:
        points = client.get_metric_history(run_id, key)
        if points:
            series[key] = {p.step: p.value for p in sorted(points, key=lambda p: p.timestamp)}
    epochs = sorted(series.get("dev/loss", {}))
    frame = pd.DataFrame({"epoch": epochs})
    for key, values in series.items():
        if set(epochs) <= set(values):
            frame[key] = [values[e] for e in epochs]
    return frame


def _exp_revs(root: Path) -> dict[str, str]:
    """DVC experiment name -> its commit, from the refs DVC keeps under refs/exps/."""
    out = {}
    for line in _sh(["git", "for-each-ref", "--format=%(objectname) %(refname)", "refs/exps/"], root,
                    check=False).splitlines():
        sha, _, ref = line.partition(" ")
        out[ref.rsplit("/", 1)[-1]] = sha
    return out


def collect(root: Path, sweep: str, plan: Plan, status: dict[str, str] | None = None) -> Sweep:
    """Read every experiment of ``sweep`` back from MLflow (parent run, stage runs, train history)."""
    from mlflow.tracking import MlflowClient

    uri = tracking_uri(root)
    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name(EXPERIMENT)
    if experiment is None:
        raise ReprotextError(f"no MLflow experiment {EXPERIMENT!r} in {redact(uri)}; run the sweep first")
    copy = sweep_dir(root, sweep)
    revs = _exp_revs(copy) if copy.is_dir() else {}
    if copy.is_dir() and plan.experiments:  # the baseline is the copy's own commit, not an experiment
        revs[plan.experiments[0].dvc_name(sweep)] = _sh(["git", "rev-parse", "HEAD"], copy, check=False).strip()
    results = {}
    for exp in plan.experiments:
        name = exp.dvc_name(sweep)
        found = client.search_runs([experiment.experiment_id], max_results=1, order_by=["attributes.start_time DESC"],
                                   filter_string=f"tags.`{TAG_PARENT}` = 'true' and tags.`dvc.exp_name` = '{name}'")
        res = Result(exp, name, (status or {}).get(name, "recorded" if found else "missing"), rev=revs.get(name))
        if found:
            parent = found[0]
            res.parent = parent.info.run_id
            res.parent_status = parent.info.status
            # NaN: a key a stage of this experiment no longer writes (reprotext.tracking), not one of its numbers
            res.metrics = {k: v for k, v in parent.data.metrics.items() if not math.isnan(v)}
            res.runs = {k.removeprefix("reprotext.run."): v for k, v in parent.data.tags.items()
                        if k.startswith("reprotext.run.")}
            children = client.search_runs([experiment.experiment_id],
                                          filter_string=f"tags.`mlflow.parentRunId` = '{res.parent}'")
            res.ran = {c.data.tags[TAG_STAGE]: c.info.run_id for c in children if TAG_STAGE in c.data.tags}
            if "train" in res.runs:
                train = client.get_run(res.runs["train"])
                res.train = dict(train.data.metrics)
                res.history = _history(client, train.info.run_id, sorted(train.data.metrics))
        results[exp.name] = res
    return Sweep(sweep, plan, uri, root, results)


def download(sweep: Sweep, run_id: str, artifact: str, dest: Path) -> Path | None:
    """An artefact of an MLflow run, copied under ``dest``; None when the run lacks it."""
    import mlflow

    dest.mkdir(parents=True, exist_ok=True)
    try:
        return Path(mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path=artifact, dst_path=str(dest),
                                                        tracking_uri=sweep.uri))
    except Exception as exc:  # MLflow raises several types for a missing artefact
        log.warning("run %s has no artefact %s (%s)", run_id, artifact, exc.__class__.__name__)
        return None


def cache_dir(root: Path) -> Path:
    out = _sh(["dvc", "cache", "dir"], root, check=False).strip()
    return Path(out) if out else root / ".dvc" / "cache"


def output_file(sweep: Sweep, result: Result, stage: str, out: str, relpath: str) -> Path | None:
    """A file inside a directory output of ``stage`` as the experiment's dvc.lock recorded it, from DVC's cache.

    The experiment's own workspace is gone (queued experiments run in temporary
    copies); its dvc.lock and DVC's cache still hold every output.
    """
    if result.rev is None:
        return None
    lock = yaml.safe_load(_sh(["git", "show", f"{result.rev}:dvc.lock"], sweep.copy, check=False) or "{}") or {}
    outs = ((lock.get("stages") or {}).get(stage) or {}).get("outs") or []
    md5 = next((o.get("md5") for o in outs if o.get("path") == out), None)
    if not md5:
        return None
    files = cache_dir(sweep.root) / "files" / "md5"
    listing = files / md5[:2] / md5[2:]
    if not listing.is_file():
        return None
    entry = next((e for e in json.loads(listing.read_text()) if e["relpath"] == relpath), None)
    path = files / entry["md5"][:2] / entry["md5"][2:] if entry else None
    return path if path is not None and path.is_file() else None

