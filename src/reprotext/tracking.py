"""MLflow: where runs go, and how stage executions become one experiment row.

The tracking URI comes from one place: ``MLFLOW_TRACKING_URI`` when set, else a
SQLite store at the project root. Never the ``./mlruns`` file store: current
MLflow refuses it.

Each stage execution is one run, nested under one parent run per pipeline
execution. The parent is keyed by ``DVC_EXP_NAME`` (set by ``dvc exp run``),
else by git commit + a hash of params.yaml, so the stage processes of one
``dvc repro`` find the same parent. After every stage the parent is brought up
to date with the params and the metrics files of *all* stages; a stage that DVC
skipped as cached is linked to the earlier run that produced its metrics (found
by the hash of its metrics file).
"""
from __future__ import annotations

import contextlib
import json
import hashlib
import logging
import os
import re
import subprocess
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from reprotext.errors import ReprotextError

EXPERIMENT = "reprotext"
# What the experiment holds, for MLflow's UI: model training runs, not GenAI traces. MLflow 3.17's UI itself follows
# its "workflowType" (a URL parameter, else the browser's last choice, first "genai"): ui_url() sets that too.
EXPERIMENT_KIND = {"mlflow.experimentKind": "custom_model_development"}
# `local`: when the tracking server does not answer, log to the repository's sqlite store instead of failing.
FALLBACK_ENV = "REPROTEXT_TRACKING_FALLBACK"
log = logging.getLogger(__name__)
TAG_STAGE, TAG_KEY, TAG_PARENT, TAG_METRICS_SHA = (
    "reprotext.stage", "reprotext.pipeline_key", "reprotext.parent", "reprotext.metrics_sha256")
_EXPS_TMP = re.compile(r"^(.*)/\.dvc/tmp/exps/")


def project_root(start: str | Path | None = None) -> Path:
    """The workspace a stage runs in: the nearest parent of the working directory holding dvc.yaml.

    For a queued experiment this is DVC's temporary copy, whose params and
    metrics are the experiment's own.
    """
    here = Path(start or os.getcwd()).resolve()
    for d in (here, *here.parents):
        if (d / "dvc.yaml").is_file():
            return d
    return here


def store_root(workspace: Path) -> Path:
    """Where the default SQLite store lives: the user's repository, also for a queued experiment.

    ``dvc queue`` runs each experiment in a temporary copy under
    ``<repo>/.dvc/tmp/exps/`` and sets ``DVC_ROOT`` to the repository; a store
    inside the copy would vanish with it.
    """
    if os.environ.get("DVC_ROOT"):
        return Path(os.environ["DVC_ROOT"]).resolve()
    m = _EXPS_TMP.match(str(workspace))
    return Path(m.group(1)) if m else workspace


def tracking_uri(workspace: Path | None = None) -> str:
    """``MLFLOW_TRACKING_URI`` if set, else ``sqlite:///<repository>/mlflow.db``."""
    uri = os.environ.get("MLFLOW_TRACKING_URI")
    if uri:
        return uri
    return f"sqlite:///{store_root(workspace or project_root()) / 'mlflow.db'}"


def ui_url(base: str, uri: str) -> str:
    """The MLflow UI at ``base`` (``http://host:port``) on the pipeline's training runs, for the store at ``uri``.

    MLflow 3.17's UI opens an experiment as GenAI (its overview of traces) unless the URL says
    ``workflowType=machine_learning``; without the experiment yet, the experiments list in that mode.
    """
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    base, mode = base.rstrip("/"), "?workflowType=machine_learning"
    try:
        exp = MlflowClient(uri).get_experiment_by_name(EXPERIMENT)
    except MlflowException:  # a store that does not answer: the experiments list, in the same mode
        exp = None
    return f"{base}/#/experiments/{exp.experiment_id}/runs{mode}" if exp else f"{base}/#/experiments{mode}"


def redact(uri: str) -> str:
    """The URI with any password replaced, fit to print."""
    return re.sub(r"(://[^:/@]+):[^@/]+@", r"\1:***@", uri)


def git_commit(root: Path, ignore: Sequence[str] = ()) -> tuple[str, bool]:
    """(commit, dirty) of the repository at root, changes to the ``ignore`` paths aside; ("unknown", False) outside
    git."""
    try:
        rev = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=True).stdout.strip()
        exclude = [f":(exclude){path}" for path in ignore]
        dirty = bool(subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", ".", *exclude],
                                    cwd=root, capture_output=True, text=True).stdout.strip())
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


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def pipeline_key(root: Path, commit: str, pipeline: str | None = None) -> str:
    """``DVC_EXP_NAME`` when DVC runs an experiment, else commit + params hash (prefixed by a sub-pipeline's name)."""
    if os.environ.get("DVC_EXP_NAME"):
        return os.environ["DVC_EXP_NAME"] + (f"-{pipeline}" if pipeline else "")
    params = (root / pipeline if pipeline else root) / "params.yaml"
    digest = _sha256(params)[:10] if params.is_file() else "noparams"
    return f"{pipeline + '-' if pipeline else ''}{commit[:10]}-{digest}"


def stage_metrics_files(root: Path, pipeline: str | None = None) -> dict[str, list[Path]]:
    """Each stage's metrics files as declared in dvc.yaml (``pipeline``: <root>/<pipeline>/dvc.yaml, whose stages
    run in the repository root)."""
    path = (root / pipeline if pipeline else root) / "dvc.yaml"
    dvc = yaml.safe_load(path.read_text()) if path.is_file() else {}
    out: dict[str, list[Path]] = {}
    for name, stage in ((dvc or {}).get("stages") or {}).items():
        entries = stage.get("metrics", [])
        out[name] = [root / (e if isinstance(e, str) else next(iter(e))) for e in entries]
    return out


def _numeric(d: Mapping[str, Any]) -> dict[str, float]:
    return {k: float(v) for k, v in flatten(d, sep="/").items() if isinstance(v, (int, float)) and not isinstance(v, bool)}


def check_reachable(uri: str, timeout: float = 10.0) -> None:
    """Fail fast, before any heavy work, when a tracking server does not answer.

    MLflow's own client retries for minutes; a stage should not train for an
    hour and then lose its run.
    """
    if not uri.startswith(("http://", "https://")):
        return
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=timeout):
            return
    except urllib.error.HTTPError as exc:
        if exc.code < 500:  # answering at all (e.g. 401/404 behind a proxy) means it is reachable
            return
        reason = f"HTTP {exc.code}"
    except (OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
    raise ReprotextError(f"MLflow tracking server {redact(uri)} is unreachable ({reason}); start it, fix "
                         f"MLFLOW_TRACKING_URI, unset it, or set {FALLBACK_ENV}=local to log to the local sqlite store")


def reachable_uri(uri: str, root: Path) -> str:
    """``uri`` when it answers; the local sqlite store when it does not and ``REPROTEXT_TRACKING_FALLBACK=local``."""
    fallback = os.environ.get(FALLBACK_ENV, "")
    if fallback not in ("", "local"):
        raise ReprotextError(f"{FALLBACK_ENV}={fallback!r} is not understood; set it to 'local' or unset it")
    try:
        check_reachable(uri)
    except ReprotextError:
        if fallback != "local":
            raise
        local = f"sqlite:///{store_root(root) / 'mlflow.db'}"
        log.warning("MLflow tracking server %s is unreachable; %s=local: logging this stage to %s instead",
                    redact(uri), FALLBACK_ENV, local)
        return local
    return uri


@contextlib.contextmanager
def best_effort(what: str) -> Iterator[None]:
    """MLflow calls made after a stage's outputs are on disk: a failure warns instead of failing the stage.

    A tracking server that dies after training must not cost the trained model:
    the stage still succeeds (so DVC records its outputs) and says what MLflow lacks.
    """
    try:
        yield
    except Exception as exc:  # MLflow and its HTTP client raise many types for a store that went away
        log.warning("MLflow logging failed after %s (%s: %s); the outputs are kept, the MLflow run lacks the rest",
                    what, exc.__class__.__name__, redact(str(exc).splitlines()[0][:200]) if str(exc) else "")


class Tracker:
    """Parent/child run bookkeeping for one stage process."""

    def __init__(self, stage: str, root: Path, pipeline: str | None = None):
        import mlflow
        from mlflow.tracking import MlflowClient

        self.mlflow, self.stage, self.root, self.pipeline = mlflow, stage, root, pipeline
        # A sub-pipeline (retrieval/dvc.yaml, run from the root) has its own dvc.yaml and params.yaml.
        self.home = root / pipeline if pipeline else root
        self.uri = reachable_uri(tracking_uri(root), root)
        mlflow.set_tracking_uri(self.uri)
        self.client = MlflowClient(self.uri)
        try:
            exp = self.client.get_experiment_by_name(EXPERIMENT)
        except Exception as exc:  # MLflow raises many types for an unreachable or broken store
            raise ReprotextError(f"MLflow tracking store {redact(self.uri)} is not usable ({exc.__class__.__name__}: "
                                 f"{redact(str(exc).splitlines()[0][:200]) if str(exc) else ''}); fix MLFLOW_TRACKING_URI or unset it") from exc
        self.experiment_id = exp.experiment_id if exp else self.client.create_experiment(
            EXPERIMENT, artifact_location=(store_root(root) / "mlartifacts").as_uri(), tags=EXPERIMENT_KIND)
        if exp and not EXPERIMENT_KIND.items() <= exp.tags.items():  # a store made before the tag
            for key, value in EXPERIMENT_KIND.items():
                self.client.set_experiment_tag(self.experiment_id, key, value)
        self.commit, self.dirty = git_commit(root)
        self.key = pipeline_key(root, self.commit, pipeline)

    def base_tags(self) -> dict[str, str]:
        tags = {"git.commit": self.commit, "git.dirty": str(self.dirty).lower(), TAG_KEY: self.key}
        for env, tag in (("DVC_EXP_NAME", "dvc.exp_name"), ("DVC_EXP_BASELINE_REV", "dvc.baseline_rev")):
            if os.environ.get(env):
                tags[tag] = os.environ[env]
        return tags

    def parent(self) -> str:
        """The parent run of this pipeline execution, created by the first stage that runs."""
        found = self.client.search_runs([self.experiment_id],
                                        filter_string=f"tags.`{TAG_KEY}` = '{self.key}' and tags.`{TAG_PARENT}` = 'true'",
                                        max_results=1, order_by=["attributes.start_time DESC"])
        if found:
            return found[0].info.run_id
        run = self.client.create_run(self.experiment_id, run_name=os.environ.get("DVC_EXP_NAME") or f"pipeline {self.key}",
                                     tags={**self.base_tags(), TAG_PARENT: "true"})
        params_path = self.home / "params.yaml"
        if params_path.is_file():
            params = flatten(yaml.safe_load(params_path.read_text()) or {})
            items = [self.mlflow.entities.Param(k, str(v)) for k, v in params.items()]
            for i in range(0, len(items), 100):
                self.client.log_batch(run.info.run_id, params=items[i:i + 100])
        return run.info.run_id

    def input_tags(self) -> dict[str, str]:
        """sha256 of the data and model files this stage reads (dvc.yaml deps outside the code)."""
        dvc_yaml = self.home / "dvc.yaml"
        dvc = (yaml.safe_load(dvc_yaml.read_text()) if dvc_yaml.is_file() else None) or {}
        tags = {}
        for dep in (dvc.get("stages") or {}).get(self.stage, {}).get("deps", []):
            path = self.root / dep
            if dep.startswith(("stages/", "src/")) or not path.exists():
                continue
            files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
            h = hashlib.sha256()
            for f in files:
                h.update(str(f.relative_to(path) if f != path else "").encode())
                h.update(_sha256(f).encode())
            tags[f"reprotext.input.{dep}"] = h.hexdigest()[:16]
        return tags

    def finish(self, run_id: str, parent_id: str) -> None:
        """Tag this run with its metrics hash and bring the parent up to date with every stage."""
        files = stage_metrics_files(self.root, self.pipeline)
        own = [p for p in files.get(self.stage, []) if p.is_file()]
        if own:
            self.client.set_tag(run_id, TAG_METRICS_SHA, _sha256(own[0]))
        metrics, tags, now = [], {}, int(time.time() * 1000)
        current: dict[str, set[str]] = {}  # stage -> the keys its metrics files hold now
        for stage, paths in files.items():
            for path in (p for p in paths if p.is_file()):
                values = _numeric(json.loads(path.read_text()))
                current.setdefault(stage, set()).update(f"{stage}/{k}" for k in values)
                # Stamped now: MLflow shows the value with the latest timestamp, and a metrics file that an earlier
                # stage saw stale (committed from another run) must not win a tie (at equal stamps the largest does).
                metrics += [self.mlflow.entities.Metric(f"{stage}/{k}", v, now, 0) for k, v in values.items()]
                producer = self._producer(stage, _sha256(path), parent_id)
                if producer:
                    tags[f"reprotext.run.{stage}"] = producer
        # An earlier stage of this execution logged every metrics file as it found it: perhaps a stale one, committed
        # from another run, with keys that the file this execution ends with (run, or restored by DVC) no longer has
        # (a few-shot k it does not train). MLflow cannot delete a metric, so the parent's latest value of each such
        # key becomes NaN: not a number of this execution.
        logged = self.client.get_run(parent_id).data.metrics
        metrics += [self.mlflow.entities.Metric(k, float("nan"), now, 0) for k in logged
                    if k.split("/", 1)[0] in current and k not in current[k.split("/", 1)[0]]]
        for i in range(0, len(metrics), 500):
            self.client.log_batch(parent_id, metrics=metrics[i:i + 500])
        for k, v in tags.items():
            self.client.set_tag(parent_id, k, v)
        self.client.set_terminated(parent_id, "FINISHED")

    def _producer(self, stage: str, metrics_sha: str, parent_id: str) -> str | None:
        """The run that wrote this metrics file: this pipeline's own child if it ran, else an earlier one."""
        runs = self.client.search_runs(
            [self.experiment_id],
            filter_string=f"tags.`{TAG_STAGE}` = '{stage}' and tags.`{TAG_METRICS_SHA}` = '{metrics_sha}'",
            order_by=["attributes.start_time DESC"], max_results=20)
        for run in runs:
            if run.data.tags.get("mlflow.parentRunId") == parent_id:
                return run.info.run_id
        return runs[0].info.run_id if runs else None


@contextlib.contextmanager
def stage_run(stage: str, params: Mapping[str, Any], pipeline: str | None = None) -> Iterator[Any]:
    """One MLflow run for one stage execution, nested under its pipeline's parent run.

    Yields the ``mlflow`` module with the run active; the run (and the parent)
    end FAILED when the stage raises. ``pipeline`` names a sub-pipeline run from
    the root (``retrieval``: retrieval/dvc.yaml and retrieval/params.yaml); its
    stages get a parent run of their own.
    """
    tracker = Tracker(stage, project_root(), pipeline)
    parent_id = tracker.parent()
    tags = {**tracker.base_tags(), TAG_STAGE: stage, **tracker.input_tags()}
    mlflow = tracker.mlflow
    run = mlflow.start_run(experiment_id=tracker.experiment_id, run_name=stage, tags=tags, parent_run_id=parent_id)
    try:
        mlflow.log_params(flatten({stage: dict(params)}))
        yield mlflow
    except BaseException:
        with best_effort(f"the {stage} stage failed"):  # keep the stage's own error, not a second one from MLflow
            mlflow.end_run("FAILED")
            tracker.client.set_terminated(parent_id, "FAILED")
        raise
    # The stage's outputs are written: a store that fails now must not fail the stage (DVC would drop them).
    with best_effort(f"the {stage} stage's outputs were written"):
        mlflow.end_run()
        tracker.finish(run.info.run_id, parent_id)
