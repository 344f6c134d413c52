"""MLflow: where runs go and how a stage execution becomes one run.

The tracking URI comes from one place: ``MLFLOW_TRACKING_URI`` when set, else a
SQLite store at the project root (``DVC_ROOT`` when DVC sets it). Never the
``./mlruns`` file store: current MLflow refuses it.
"""
from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

EXPERIMENT = "reprotext"


def project_root(start: str | Path | None = None) -> Path:
    """The pipeline's root: ``DVC_ROOT`` if set, else the nearest parent holding dvc.yaml."""
    if os.environ.get("DVC_ROOT"):
        return Path(os.environ["DVC_ROOT"]).resolve()
    here = Path(start or os.getcwd()).resolve()
    for d in (here, *here.parents):
        if (d / "dvc.yaml").is_file():
            return d
    return here


def tracking_uri(root: Path | None = None) -> str:
    uri = os.environ.get("MLFLOW_TRACKING_URI")
    if uri:
        return uri
    return f"sqlite:///{(root or project_root()) / 'mlflow.db'}"


def git_commit(root: Path) -> tuple[str, bool]:
    """(commit, dirty) of the repository at root; ("unknown", False) outside git."""
    try:
        rev = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=True).stdout.strip()
        dirty = bool(subprocess.run(["git", "status", "--porcelain"], cwd=root, capture_output=True, text=True).stdout.strip())
        return rev, dirty
    except (OSError, subprocess.CalledProcessError):
        return "unknown", False


def flatten(d: Mapping[str, Any], sep: str = ".", prefix: str = "") -> dict[str, Any]:
    """{"a": {"b": 1}} -> {"a.b": 1} (or "a/b" with sep="/")."""
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, Mapping):
            out.update(flatten(v, sep, key + sep))
        else:
            out[key] = v
    return out


@contextlib.contextmanager
def stage_run(stage: str, params: Mapping[str, Any]) -> Iterator[Any]:
    """One MLflow run for one stage execution, with the stage's params and tags.

    Yields the ``mlflow`` module with the run active; the run ends FAILED when
    the stage raises.
    """
    import mlflow

    root = project_root()
    mlflow.set_tracking_uri(tracking_uri(root))
    exp = mlflow.get_experiment_by_name(EXPERIMENT)
    if exp is None:
        exp_id = mlflow.create_experiment(EXPERIMENT, artifact_location=(root / "mlartifacts").as_uri())
    else:
        exp_id = exp.experiment_id
    commit, dirty = git_commit(root)
    tags = {
        "reprotext.stage": stage,
        "git.commit": commit,
        "git.dirty": str(dirty).lower(),
    }
    if os.environ.get("DVC_EXP_NAME"):
        tags["dvc.exp_name"] = os.environ["DVC_EXP_NAME"]
    with mlflow.start_run(experiment_id=exp_id, run_name=stage, tags=tags):
        mlflow.log_params(flatten({stage: dict(params)}))
        yield mlflow
