"""The team set-up: an MLflow server backed by PostgreSQL receives a full pipeline run.

A real PostgreSQL (Debian's, started by the test as the `postgres` user on a
loopback port) and a real `mlflow server`; nothing is mocked.
"""
from __future__ import annotations

import glob
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient
from repo_copy import copy_repo, sh
from servers import free_port, serve

pytestmark = pytest.mark.slow
STAGES = {"prepare", "split", "tokenize", "embed", "pretrain", "train", "finetune", "multitask", "evaluate"}


def _as_postgres(args: list[str]) -> None:
    cmd = args if os.geteuid() != 0 else ["runuser", "-u", "postgres", "--", *args]
    subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def postgres():
    bins = sorted(glob.glob("/usr/lib/postgresql/*/bin"))
    assert bins, "PostgreSQL is not installed: `apt-get install postgresql` (.ci/run does it)"
    bin_dir = Path(bins[-1])
    # A directory the postgres user can reach (pytest's tmp dirs are private to root).
    data = Path(tempfile.mkdtemp(prefix="reprotext-pg-"))
    os.chmod(data, 0o777)
    pgdata = data / "db"
    port = free_port()
    if os.geteuid() == 0:
        shutil.chown(data, "postgres")
    try:
        _as_postgres([str(bin_dir / "initdb"), "-D", str(pgdata), "-U", "mlflow", "--auth=trust", "-E", "UTF8"])
        _as_postgres([str(bin_dir / "pg_ctl"), "-D", str(pgdata), "-w", "-l", str(data / "pg.log"), "-o",
                      f"-p {port} -k {data} -c listen_addresses=127.0.0.1", "start"])
        try:
            _as_postgres([str(bin_dir / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "mlflow", "mlflow"])
            yield f"postgresql+psycopg2://mlflow@127.0.0.1:{port}/mlflow"
        finally:
            _as_postgres([str(bin_dir / "pg_ctl"), "-D", str(pgdata), "-m", "fast", "-w", "stop"])
    finally:
        shutil.rmtree(data, ignore_errors=True)


def test_pipeline_logs_to_a_postgres_backed_server(postgres, tmp_path):
    port = free_port()
    mlflow_bin = str(Path(sys.executable).parent / "mlflow")
    with serve([mlflow_bin, "server", "--backend-store-uri", postgres, "--artifacts-destination",
                str(tmp_path / "artifacts"), "--host", "127.0.0.1", "--port", str(port)],
               f"http://127.0.0.1:{port}/health", tmp_path, tmp_path / "server.log"):
        uri = f"http://127.0.0.1:{port}"
        repo = copy_repo(tmp_path / "repo")
        sh(["dvc", "repro"], repo, extra_env={"MLFLOW_TRACKING_URI": uri})
        assert not (repo / "mlflow.db").exists(), "the run went to the local store, not the server"
        client = MlflowClient(uri)
        exp = client.get_experiment_by_name("reprotext")
        runs = client.search_runs([exp.experiment_id])
        children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
        parents = [r for r in runs if r.data.tags.get("reprotext.parent") == "true"]
        assert len(parents) == 1 and {r.info.run_name for r in children} == STAGES
        assert all(r.info.status == "FINISHED" for r in runs)
        assert "evaluate/source/test/accuracy" in parents[0].data.metrics
        assert client.get_model_version_by_alias("reprotext", "champion").version is not None
        artifacts = {a.path for a in client.list_artifacts(children[0].info.run_id)} | {
            a.path for r in children for a in client.list_artifacts(r.info.run_id)}
        assert "evaluate" in artifacts
