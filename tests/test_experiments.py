"""DVC experiments and MLflow runs as one: queued experiments in parallel on one SQLite store."""
from __future__ import annotations

import time

import pytest
from mlflow.tracking import MlflowClient
from repo_copy import GIT, copy_repo, sh

pytestmark = pytest.mark.slow
STAGES = {"prepare", "split", "tokenize", "embed", "train", "finetune", "evaluate"}
NAMES = ["lr-a", "lr-b", "lr-c", "lr-d"]


def _wait_for_queue(repo, timeout: float = 900) -> str:
    deadline = time.monotonic() + timeout
    while True:
        status = sh(["dvc", "queue", "status"], repo).stdout
        if not any(word in status for word in ("Queued", "Running")):
            return status
        assert time.monotonic() < deadline, f"queue still busy after {timeout:.0f}s:\n{status}"
        time.sleep(5)


def test_four_queued_experiments_become_four_complete_parent_runs(tmp_path):
    repo = copy_repo(tmp_path / "repo")
    sh(["dvc", "repro"], repo)  # the baseline; it also creates the SQLite store before any parallel work
    sh(["git", "add", "-A"], repo)
    sh([*GIT, "commit", "-qm", "baseline"], repo)
    for name, lr in zip(NAMES, ("0.05", "0.08", "0.12", "0.15")):
        sh(["dvc", "exp", "run", "--queue", "-n", name, "-S", f"train.lr={lr}"], repo)
    sh(["dvc", "queue", "start", "-j", "2"], repo)
    status = _wait_for_queue(repo)
    assert "Failed" not in status, status
    logs = "\n".join(sh(["dvc", "queue", "logs", name], repo, check=False).stdout for name in NAMES)
    assert "database is locked" not in logs

    client = MlflowClient(f"sqlite:///{repo}/mlflow.db")
    exp = client.get_experiment_by_name("reprotext")
    parents = {r.info.run_name: r for r in client.search_runs(
        [exp.experiment_id], filter_string="tags.`reprotext.parent` = 'true'")}
    assert set(NAMES) <= set(parents)
    for name in NAMES:
        parent = parents[name]
        assert parent.info.status == "FINISHED", name
        assert parent.data.tags["dvc.exp_name"] == name
        # Every stage is linked, whether it ran in this experiment or was restored from DVC's cache.
        assert {k.removeprefix("reprotext.run.") for k in parent.data.tags if k.startswith("reprotext.run.")} == STAGES
        assert "evaluate/source/test/accuracy" in parent.data.metrics
        children = client.search_runs([exp.experiment_id],
                                      filter_string=f"tags.`mlflow.parentRunId` = '{parent.info.run_id}'")
        assert {"train", "finetune", "evaluate"} <= {c.info.run_name for c in children}
        assert parent.data.params["train.lr"] != "0.1"
