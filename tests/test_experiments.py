"""DVC experiments and MLflow runs as one: queued experiments in parallel on one SQLite store."""
from __future__ import annotations

import subprocess
import time

import pytest
from mlflow.tracking import MlflowClient
from repo_copy import GIT, copy_repo, env, sh

pytestmark = pytest.mark.slow
STAGES = {"prepare", "split", "tokenize", "embed", "pretrain", "train", "finetune", "multitask", "evaluate"}
NAMES = ["lr-a", "lr-b", "lr-c", "lr-d"]


def _wait_for_queue(repo, timeout: float = 1200) -> str:
    deadline = time.monotonic() + timeout
    while True:
        status = sh(["dvc", "queue", "status"], repo, timeout=120).stdout
        if not any(word in status for word in ("Queued", "Running")):
            return status
        if time.monotonic() > deadline:
            logs = "\n".join(sh(["dvc", "queue", "logs", name], repo, check=False, timeout=120).stdout[-2000:]
                             for name in NAMES)
            pytest.fail(f"queue still busy after {timeout:.0f}s:\n{status}\n{logs}")
        time.sleep(5)


@pytest.mark.timeout(1800)
def test_four_queued_experiments_become_four_complete_parent_runs(tmp_path):
    repo = copy_repo(tmp_path / "repo")
    sh(["dvc", "repro"], repo)  # the baseline; it also creates the SQLite store before any parallel work
    sh(["git", "add", "-A"], repo)
    sh([*GIT, "commit", "-qm", "baseline"], repo)
    for name, lr in zip(NAMES, ("0.05", "0.08", "0.12", "0.15")):
        sh(["dvc", "exp", "run", "--queue", "-n", name, "-S", f"train.lr={lr}"], repo)
    # The workers are forked from `dvc queue start` and inherit its stdout: with a pipe there, the call
    # would return only when the last worker exits. A file lets it return at once; the queue is polled.
    with open(tmp_path / "queue-start.log", "w") as log:
        subprocess.run(["dvc", "queue", "start", "-j", "2"], cwd=repo, env=env(), stdout=log,
                       stderr=subprocess.STDOUT, check=True, timeout=120)
    try:
        status = _wait_for_queue(repo)
    finally:
        sh(["dvc", "queue", "stop", "--kill"], repo, check=False, timeout=120)
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
