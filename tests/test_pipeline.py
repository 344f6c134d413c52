"""End to end: `dvc repro` of the real pipeline on tiny params, in a copy of the repository."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from mlflow.tracking import MlflowClient

ROOT = Path(__file__).resolve().parents[1]
STAGES = ["prepare", "split", "tokenize", "embed", "train", "finetune", "evaluate"]
TINY = {
    "prepare": {"max_docs": 400},
    "tokenize": {"vocab_size": 600},
    "embed": {"dim": 16, "epochs": 1},
    "train": {"max_epochs": 2, "lr": 0.01},
    "finetune": {"max_epochs": 2, "lr": 0.01},
}

pytestmark = pytest.mark.slow


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_TRACKING_URI", "DVC_ROOT", "DVC_EXP_NAME")}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["DVC_NO_ANALYTICS"] = "1"
    return env


def _sh(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    proc = subprocess.run(args, cwd=cwd, env=_env(), capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, f"{' '.join(args)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc


@pytest.fixture(scope="module")
def repo(tmp_path_factory) -> Path:
    """A git copy of this repository (what a clone would hold) with tiny params, after one `dvc repro`."""
    dest = tmp_path_factory.mktemp("pipeline")
    files = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                           capture_output=True, text=True, check=True).stdout.split("\0")
    for rel in filter(None, files):
        if (ROOT / rel).is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / rel, dest / rel)
    params = yaml.safe_load((dest / "params.yaml").read_text())
    for section, values in TINY.items():
        params[section].update(values)
    (dest / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    git = ["git", "-c", "user.email=ci@localhost", "-c", "user.name=ci"]
    _sh(["git", "init", "-q"], dest)
    _sh(["git", "add", "-A"], dest)
    _sh([*git, "commit", "-qm", "tiny"], dest)
    _sh(["dvc", "repro"], dest)
    return dest


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
    shown = _sh(["dvc", "metrics", "show", "--json"], repo).stdout
    assert "macro_f1" in shown


def test_one_mlflow_run_per_stage(repo):
    client = MlflowClient(f"sqlite:///{repo}/mlflow.db")
    exp = client.get_experiment_by_name("reprotext")
    runs = client.search_runs([exp.experiment_id])
    assert sorted(r.info.run_name for r in runs) == sorted(STAGES)
    assert all(r.info.status == "FINISHED" for r in runs)
    by_name = {r.info.run_name: r for r in runs}
    assert by_name["train"].data.params["train.model"] == "bag"
    assert "dev/loss" in by_name["train"].data.metrics
    assert "source/test/accuracy" in by_name["evaluate"].data.metrics
    history = client.get_metric_history(by_name["train"].info.run_id, "dev/loss")
    assert [m.step for m in history] == [0, 1]


def test_second_repro_is_a_no_op(repo):
    out = _sh(["dvc", "repro"], repo).stdout
    assert "Running stage" not in out
    assert json.loads(_sh(["dvc", "status", "--json"], repo).stdout) == {}


def test_changing_train_params_reruns_only_downstream(repo):
    params_path = repo / "params.yaml"
    original = params_path.read_text()
    params = yaml.safe_load(original)
    params["train"]["lr"] = 0.02
    params_path.write_text(yaml.safe_dump(params, sort_keys=False))
    try:
        changed = json.loads(_sh(["dvc", "status", "--json"], repo).stdout)
        assert sorted(changed) == ["evaluate", "finetune", "train"]
    finally:
        params_path.write_text(original)


def test_summary_prints_both_tasks(repo):
    out = _sh(["reprotext", "summary"], repo).stdout
    assert "source" in out and "target" in out and "test accuracy" in out
