"""End to end: `dvc repro` of the real pipeline on tiny params, in a copy of the repository."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from mlflow.tracking import MlflowClient
from repo_copy import sh

STAGES = ["prepare", "split", "tokenize", "embed", "train", "finetune", "evaluate"]

pytestmark = pytest.mark.slow


@pytest.fixture
def repo(pipeline: Path) -> Path:
    return pipeline


def test_every_declared_output_exists(repo):
    dvc = yaml.safe_load((repo / "dvc.yaml").read_text())
    for name, stage in dvc["stages"].items():
        for out in stage.get("outs", []) + stage.get("metrics", []) + stage.get("plots", []):
            path = repo / (out if isinstance(out, str) else next(iter(out)))
            assert path.exists(), f"{name}: {path} missing"
    assert (repo / "reports/evaluate/source_confusion.png").read_bytes()[:4] == b"\x89PNG"
    assert (repo / "models/train/history.png").is_file()


def test_metrics_files_hold_test_scores(repo):
    ev = json.loads((repo / "metrics/evaluate.json").read_text())
    for role in ("source", "target"):
        for key in ("accuracy", "macro_f1"):
            assert 0.0 <= ev[role]["test"][key] <= 1.0
    assert ev["source"]["test_docs"] == 40  # 10% of 400
    train = json.loads((repo / "metrics/train.json").read_text())
    assert train["epochs_run"] == 2 and train["best_epoch"] in (0, 1)
    shown = sh(["dvc", "metrics", "show", "--json"], repo).stdout
    assert "macro_f1" in shown


def test_one_mlflow_run_per_stage_under_one_parent(repo):
    client = MlflowClient(f"sqlite:///{repo}/mlflow.db")
    exp = client.get_experiment_by_name("reprotext")
    runs = client.search_runs([exp.experiment_id])
    parents = [r for r in runs if r.data.tags.get("reprotext.parent") == "true"]
    children = [r for r in runs if r not in parents]
    assert len(parents) == 1
    parent = parents[0]
    assert sorted(r.info.run_name for r in children) == sorted(STAGES)
    assert all(r.data.tags["mlflow.parentRunId"] == parent.info.run_id for r in children)
    assert all(r.info.status == "FINISHED" for r in runs)
    by_name = {r.info.run_name: r for r in children}
    assert by_name["train"].data.params["train.model"] == "bag"
    assert "dev/loss" in by_name["train"].data.metrics
    assert "source/test/accuracy" in by_name["evaluate"].data.metrics
    history = client.get_metric_history(by_name["train"].info.run_id, "dev/loss")
    assert [m.step for m in history] == [0, 1]
    # The parent is the experiment's row: every param and every stage's final metrics.
    assert parent.data.params["train.lr"] == "0.1" and parent.data.params["prepare.max_docs"] == "400"
    assert "evaluate/source/test/accuracy" in parent.data.metrics and "train/dev/loss" in parent.data.metrics
    assert {parent.data.tags[f"reprotext.run.{s}"] for s in STAGES} == {by_name[s].info.run_id for s in STAGES}


def test_second_repro_is_a_no_op(repo):
    out = sh(["dvc", "repro"], repo).stdout
    assert "Running stage" not in out
    assert json.loads(sh(["dvc", "status", "--json"], repo).stdout) == {}


def test_changing_train_params_reruns_only_downstream(repo):
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["train"]["lr"] = 0.05
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    assert sorted(json.loads(sh(["dvc", "status", "--json"], repo).stdout)) == ["train"]
    out = sh(["dvc", "repro"], repo).stdout
    ran = [line.split("'")[1] for line in out.splitlines() if line.startswith("Running stage")]
    assert ran == ["train", "finetune", "evaluate"]


def test_summary_prints_both_tasks(repo):
    out = sh(["reprotext", "summary"], repo).stdout
    assert "source" in out and "target" in out and "test accuracy" in out
