import math

import mlflow
from mlflow.tracking import MlflowClient

from reprotext.tracking import EXPERIMENT, flatten, project_root, stage_run, tracking_uri, ui_url


def test_uri_defaults_to_sqlite_at_the_root_and_env_overrides(tmp_path, monkeypatch):
    (tmp_path / "dvc.yaml").write_text("stages: {}\n")
    (tmp_path / "sub").mkdir()
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("DVC_ROOT", raising=False)
    monkeypatch.chdir(tmp_path / "sub")
    assert project_root() == tmp_path
    assert tracking_uri() == f"sqlite:///{tmp_path}/mlflow.db"
    # A queued experiment runs in a copy; DVC_ROOT names the repository, where the store stays.
    monkeypatch.setenv("DVC_ROOT", str(tmp_path / "repo"))
    assert project_root() == tmp_path
    assert tracking_uri() == f"sqlite:///{tmp_path}/repo/mlflow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5999")
    assert tracking_uri() == "http://127.0.0.1:5999"


def test_flatten():
    assert flatten({"a": {"b": 1, "c": {"d": 2}}, "e": 3}, sep="/") == {"a/b": 1, "a/c/d": 2, "e": 3}


def test_stage_run_records_params_tags_metrics(tmp_path, monkeypatch):
    (tmp_path / "dvc.yaml").write_text("stages: {}\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("DVC_ROOT", raising=False)
    monkeypatch.setenv("DVC_EXP_NAME", "exp-1")
    with stage_run("train", {"lr": 0.1, "model": "bag"}) as run_mlflow:
        run_mlflow.log_metric("dev/loss", 0.5)
        run_id = mlflow.active_run().info.run_id
    client = MlflowClient(f"sqlite:///{tmp_path}/mlflow.db")
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED" and run.info.run_name == "train"
    assert run.data.params == {"train.lr": "0.1", "train.model": "bag"}
    assert run.data.metrics["dev/loss"] == 0.5
    assert run.data.tags["reprotext.stage"] == "train" and run.data.tags["dvc.exp_name"] == "exp-1"
    exp = client.get_experiment_by_name(EXPERIMENT)
    assert exp.artifact_location == (tmp_path / "mlartifacts").as_uri()


def _pipeline_dir(tmp_path, monkeypatch):
    (tmp_path / "dvc.yaml").write_text(
        "stages:\n"
        "  a:\n    cmd: x\n    deps: [data.txt]\n    metrics: [{metrics/a.json: {cache: false}}]\n"
        "  b:\n    cmd: y\n    metrics: [{metrics/b.json: {cache: false}}]\n")
    (tmp_path / "params.yaml").write_text("a:\n  lr: 0.1\n")
    (tmp_path / "data.txt").write_text("hello")
    (tmp_path / "metrics").mkdir()
    monkeypatch.chdir(tmp_path)
    for var in ("MLFLOW_TRACKING_URI", "DVC_ROOT", "DVC_EXP_NAME"):
        monkeypatch.delenv(var, raising=False)
    return MlflowClient(f"sqlite:///{tmp_path}/mlflow.db")


def _run_stage(name, value, tmp_path):
    with stage_run(name, {"k": value}):
        (tmp_path / "metrics" / f"{name}.json").write_text(f'{{"dev": {{"acc": {value}}}}}')
        return mlflow.active_run().info.run_id


def test_stages_nest_under_one_parent_with_all_params_and_metrics(tmp_path, monkeypatch):
    client = _pipeline_dir(tmp_path, monkeypatch)
    a, b = _run_stage("a", 0.5, tmp_path), _run_stage("b", 0.7, tmp_path)
    parent_id = client.get_run(a).data.tags["mlflow.parentRunId"]
    assert client.get_run(b).data.tags["mlflow.parentRunId"] == parent_id
    parent = client.get_run(parent_id)
    assert parent.info.status == "FINISHED"
    assert parent.data.params == {"a.lr": "0.1"}
    assert parent.data.metrics == {"a/dev/acc": 0.5, "b/dev/acc": 0.7}
    assert parent.data.tags["reprotext.run.a"] == a and parent.data.tags["reprotext.run.b"] == b
    assert client.get_run(a).data.tags["reprotext.input.data.txt"]


def test_a_cached_stage_is_linked_to_the_run_that_produced_it(tmp_path, monkeypatch):
    client = _pipeline_dir(tmp_path, monkeypatch)
    a = _run_stage("a", 0.5, tmp_path)
    _run_stage("b", 0.7, tmp_path)
    (tmp_path / "params.yaml").write_text("a:\n  lr: 0.1\nb:\n  k: 2\n")  # a new pipeline execution
    b2 = _run_stage("b", 0.9, tmp_path)  # "a" was skipped by DVC: its metrics file is the old one
    new_parent = client.get_run(client.get_run(b2).data.tags["mlflow.parentRunId"])
    assert new_parent.data.metrics == {"a/dev/acc": 0.5, "b/dev/acc": 0.9}
    assert new_parent.data.tags["reprotext.run.a"] == a and new_parent.data.tags["reprotext.run.b"] == b2
    assert new_parent.data.params == {"a.lr": "0.1", "b.k": "2"}


def test_keys_a_stage_no_longer_writes_are_not_left_in_the_parent(tmp_path, monkeypatch):
    client = _pipeline_dir(tmp_path, monkeypatch)
    # a metrics file committed from another run, with a key this run's "b" will not write
    (tmp_path / "metrics" / "b.json").write_text('{"dev": {"acc": 0.1}, "fewshot": {"k10": 0.99}}')
    a = _run_stage("a", 0.5, tmp_path)  # logs every metrics file it finds, the stale one included
    parent_id = client.get_run(a).data.tags["mlflow.parentRunId"]
    assert client.get_run(parent_id).data.metrics["b/fewshot/k10"] == 0.99
    _run_stage("b", 0.7, tmp_path)
    metrics = client.get_run(parent_id).data.metrics
    assert metrics["b/dev/acc"] == 0.7 and metrics["a/dev/acc"] == 0.5
    assert math.isnan(metrics["b/fewshot/k10"])  # not this run's number any more
    # a file that changes without its stage running (DVC restores it from its run cache) is caught by the next stage
    (tmp_path / "metrics" / "b.json").write_text('{"dev": {"acc": 0.7}, "fewshot": {"k1": 0.4}}')
    _run_stage("a", 0.6, tmp_path)
    (tmp_path / "metrics" / "b.json").write_text('{"dev": {"acc": 0.7}}')
    _run_stage("a", 0.6, tmp_path)
    metrics = client.get_run(parent_id).data.metrics
    assert math.isnan(metrics["b/fewshot/k1"]) and metrics["a/dev/acc"] == 0.6 and metrics["b/dev/acc"] == 0.7


def test_dvc_experiment_name_keys_the_parent(tmp_path, monkeypatch):
    client = _pipeline_dir(tmp_path, monkeypatch)
    monkeypatch.setenv("DVC_EXP_NAME", "lucky-dog")
    a = _run_stage("a", 0.5, tmp_path)
    parent = client.get_run(client.get_run(a).data.tags["mlflow.parentRunId"])
    assert parent.info.run_name == "lucky-dog" and parent.data.tags["dvc.exp_name"] == "lucky-dog"


def test_a_failing_stage_marks_the_parent_failed(tmp_path, monkeypatch):
    client = _pipeline_dir(tmp_path, monkeypatch)
    try:
        with stage_run("a", {}):
            run_id = mlflow.active_run().info.run_id
            raise ValueError("boom")
    except ValueError:
        pass
    run = client.get_run(run_id)
    assert run.info.status == "FAILED"
    assert client.get_run(run.data.tags["mlflow.parentRunId"]).info.status == "FAILED"


def test_queued_experiment_copies_log_to_the_repository_store(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    from reprotext.tracking import store_root

    assert store_root(tmp_path / ".dvc" / "tmp" / "exps" / "tmpab12") == tmp_path
    assert tracking_uri(tmp_path / ".dvc" / "tmp" / "exps" / "tmpab12") == f"sqlite:///{tmp_path}/mlflow.db"


def test_passwords_are_redacted():
    from reprotext.tracking import redact

    assert redact("postgresql://bob:s3cret@db:5432/mlflow") == "postgresql://bob:***@db:5432/mlflow"
    assert redact("http://127.0.0.1:5000") == "http://127.0.0.1:5000"


def test_a_stage_outside_a_pipeline_root_still_logs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no dvc.yaml, no params.yaml
    for var in ("MLFLOW_TRACKING_URI", "DVC_ROOT", "DVC_EXP_NAME"):
        monkeypatch.delenv(var, raising=False)
    with stage_run("a", {"k": 1}):
        run_id = mlflow.active_run().info.run_id
    assert MlflowClient(f"sqlite:///{tmp_path}/mlflow.db").get_run(run_id).info.status == "FINISHED"


def test_an_unreachable_server_fails_fast_naming_the_uri(tmp_path, monkeypatch):
    import socket
    import time

    import pytest

    from reprotext.errors import ReprotextError

    with socket.socket() as s:  # a loopback port with nothing listening
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    (tmp_path / "dvc.yaml").write_text("stages: {}\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://bob:hunter2@127.0.0.1:{port}")
    start = time.monotonic()
    with pytest.raises(ReprotextError, match=rf"http://bob:\*\*\*@127.0.0.1:{port} is unreachable") as err:
        with stage_run("train", {}):
            pass
    assert time.monotonic() - start < 15 and "hunter2" not in str(err.value)


def test_the_ui_opens_on_the_training_runs(tmp_path, monkeypatch):
    """MLflow 3.17's UI shows an experiment as GenAI unless told: the experiment says what it holds, the URL the mode."""
    (tmp_path / "dvc.yaml").write_text("stages: {}\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("DVC_ROOT", raising=False)
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    assert ui_url("http://h:1", uri) == "http://h:1/#/experiments?workflowType=machine_learning"
    with stage_run("train", {}):
        pass
    exp = MlflowClient(uri).get_experiment_by_name(EXPERIMENT)
    assert exp.tags["mlflow.experimentKind"] == "custom_model_development"
    assert ui_url("http://h:1", uri) == f"http://h:1/#/experiments/{exp.experiment_id}/runs?workflowType=machine_learning"


def test_git_commit_reports_a_dirty_tree_except_for_ignored_paths(tmp_path):
    import subprocess

    from reprotext.tracking import git_commit

    git = ["git", "-c", "user.email=t@localhost", "-c", "user.name=t"]
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    (tmp_path / "code.py").write_text("x = 1\n")
    (tmp_path / "reports").mkdir()
    (tmp_path / "reports" / "lecture.md").write_text("old\n")
    subprocess.run([*git, "add", "-A"], cwd=tmp_path, check=True)
    subprocess.run([*git, "commit", "-qm", "c"], cwd=tmp_path, check=True)
    assert git_commit(tmp_path)[1] is False
    (tmp_path / "reports" / "lecture.md").write_text("new\n")
    assert git_commit(tmp_path)[1] is True
    assert git_commit(tmp_path, ignore=["reports/lecture.md"])[1] is False
    (tmp_path / "code.py").write_text("x = 2\n")
    assert git_commit(tmp_path, ignore=["reports/lecture.md"])[1] is True
