import mlflow
from mlflow.tracking import MlflowClient

from reprotext.tracking import EXPERIMENT, flatten, project_root, stage_run, tracking_uri


def test_uri_defaults_to_sqlite_at_the_root_and_env_overrides(tmp_path, monkeypatch):
    (tmp_path / "dvc.yaml").write_text("stages: {}\n")
    (tmp_path / "sub").mkdir()
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("DVC_ROOT", raising=False)
    monkeypatch.chdir(tmp_path / "sub")
    assert project_root() == tmp_path
    assert tracking_uri() == f"sqlite:///{tmp_path}/mlflow.db"
    monkeypatch.setenv("DVC_ROOT", str(tmp_path / "sub"))
    assert project_root() == tmp_path / "sub"
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
