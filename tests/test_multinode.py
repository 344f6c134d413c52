"""Beyond one machine: the train stage on two nodes, simulated by two torchrun agents on loopback (CPU, gloo).

Each agent stands for one node (``--nnodes 2 --nproc-per-node 1``) and runs the
stage as dvc.yaml does, with ``train.num_nodes: 2`` and ``train.strategy: ddp``;
each gets its own output paths, as each node would have its own disk, so that
what rank 1 writes (nothing) shows. The inputs are the session's tiny pipeline
(``pipeline`` in conftest.py), read and never written: the outputs, the params
file and the MLflow store are the test's own.
"""
from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml
from mlflow.tracking import MlflowClient
from repo_copy import ROOT, stage_command

from reprotext.errors import ConfigError
from reprotext.models import load_model
from reprotext.tokenizer import Tokenizer
from reprotext.training import EpochShuffleSampler, collate
from reprotext.training.data import load_task
from reprotext.training.fit import check_launched_world, check_sparse_all_reduce

# Enough epochs to kill a run in the middle; patience 1 so that early stopping, agreed by both processes, ends it.
TRAIN = {"num_nodes": 2, "strategy": "ddp", "max_epochs": 12, "patience": 1, "batch_size": 32}
OUTS = {"--out": "model", "--history": "history.csv", "--metrics": "metrics.json"}


def test_each_process_draws_its_own_share_of_every_epoch():
    for n in (10, 11):
        for epoch in (0, 1):
            shares = []
            for rank in (0, 1):
                sampler = EpochShuffleSampler(n, seed=3, rank=rank, world=2)
                sampler.set_epoch(epoch)
                shares.append(list(sampler))
            assert len(shares[0]) == len(shares[1]) == math.ceil(n / 2)
            assert set(shares[0]) | set(shares[1]) == set(range(n))
            # Disjoint, but for the one example an odd count repeats so that both take as many steps.
            assert len(set(shares[0]) & set(shares[1])) == n % 2
        one = EpochShuffleSampler(n, seed=3)
        one.set_epoch(1)
        assert sorted(one) == list(range(n))


def test_params_must_describe_the_processes_torchrun_started(monkeypatch):
    for name in ("TORCHELASTIC_RUN_ID", "MASTER_ADDR", "SLURM_NTASKS", "LSB_JOBID"):
        monkeypatch.delenv(name, raising=False)
    check_launched_world(1, 1)  # not under torchrun: Lightning starts its own processes
    check_launched_world(1, 4)
    # Two machines, but nothing started the other one: `dvc repro` would wait for it forever.
    with pytest.raises(ConfigError, match="train.num_nodes 2: nothing started this stage on the other machines"):
        check_launched_world(2, 1)
    monkeypatch.setenv("MASTER_ADDR", "10.0.0.1")  # Lightning's own multi-node set-up: NODE_RANK, MASTER_ADDR, ...
    check_launched_world(2, 1)
    monkeypatch.setenv("TORCHELASTIC_RUN_ID", "test")
    monkeypatch.setenv("WORLD_SIZE", "4")
    check_launched_world(2, 2)
    with pytest.raises(ConfigError, match="torchrun started 4 processes, but train.num_nodes 1 x train.devices 2 is 2"):
        check_launched_world(1, 2)


def test_sparse_gradients_over_gpu_processes_are_refused_before_training():
    check_sparse_all_reduce(True, 2, torch.device("cpu"))  # gloo all-reduces them
    check_sparse_all_reduce(True, 1, torch.device("cuda", 0))  # one process: nothing to all-reduce
    check_sparse_all_reduce(False, 8, torch.device("cuda", 0))
    with pytest.raises(ConfigError, match="2 cuda processes would all-reduce sparse gradients.*sparse: false"):
        check_sparse_all_reduce(True, 2, torch.device("cuda", 0))


@pytest.fixture(scope="module")
def params(pipeline, tmp_path_factory) -> Path:
    """The pipeline's params with the two-node train settings."""
    values = yaml.safe_load((pipeline / "params.yaml").read_text())
    values["train"].update(TRAIN)
    path = tmp_path_factory.mktemp("multinode") / "params.yaml"
    path.write_text(yaml.safe_dump(values, sort_keys=False))
    return path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start_nodes(repo: Path, params: Path, out: Path, resume_dirs: tuple[Path, Path], db: Path,
                 run: str) -> list[subprocess.Popen]:
    """Two torchrun agents, node ranks 0 and 1, running dvc.yaml's train command in ``repo`` with node-local
    outputs under ``out``; their output goes to ``out/<run>-node<rank>.log``."""
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("DVC_ROOT", "DVC_EXP_NAME")}
    env.update({"PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "src")]),
                "MLFLOW_TRACKING_URI": f"sqlite:///{db}", "GLOO_SOCKET_IFNAME": "lo"})
    cmd = stage_command(repo, "train")[1:]  # -m stages.train --splits ...
    procs = []
    for rank in (0, 1):
        node = out / f"node{rank}"
        args = cmd + ["--params", str(params)]
        for flag, name in {**OUTS, "--resume-dir": None}.items():
            args[args.index(flag) + 1] = str(resume_dirs[rank] if name is None else node / name)
        log = out / f"{run}-node{rank}.log"
        procs.append(subprocess.Popen(
            [sys.executable, "-m", "torch.distributed.run", "--nnodes", "2", "--nproc-per-node", "1",
             "--node-rank", str(rank), "--master-addr", "127.0.0.1", "--master-port", str(port), *args],
            cwd=repo, env=env, stdout=subprocess.DEVNULL, stderr=log.open("w")))
    return procs


def _wait(procs: list[subprocess.Popen], timeout: float = 240) -> list[int]:
    deadline = time.monotonic() + timeout
    try:
        return [p.wait(timeout=max(1.0, deadline - time.monotonic())) for p in procs]
    except subprocess.TimeoutExpired:
        _kill(procs)
        raise


def _children(pid: int) -> list[int]:
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            out.append(int(stat.parent.name))
    return out


def _kill(procs: list[subprocess.Popen]) -> None:
    """SIGKILL each agent's workers (torchrun starts them in sessions of their own), then the agent: a node dies."""
    for p in procs:
        for child in _children(p.pid):
            with contextlib.suppress(ProcessLookupError):  # it may have ended on its own meanwhile
                os.kill(child, signal.SIGKILL)
        p.kill()
        p.wait()


def _log(out: Path, run: str, rank: int) -> str:
    return (out / f"{run}-node{rank}.log").read_text()


def _run(*args) -> list[int]:
    return _wait(_start_nodes(*args))


@pytest.fixture(scope="module")
def clean(pipeline, params, tmp_path_factory, template_db) -> Path:
    """One uninterrupted two-node run; each node resumes from (and would keep state in) its own directory."""
    out = tmp_path_factory.mktemp("clean")
    shutil.copy(template_db, out / "mlflow.db")
    codes = _run(pipeline, params, out, (out / "node0/resume", out / "node1/resume"), out / "mlflow.db", "clean")
    assert codes == [0, 0], f"{codes}\n{_log(out, 'clean', 0)[-3000:]}\n{_log(out, 'clean', 1)[-3000:]}"
    return out


@pytest.mark.slow
def test_two_nodes_train_one_model_that_rank_zero_writes_and_tracks(pipeline, clean):
    node0, node1 = clean / "node0", clean / "node1"
    assert not node1.exists()  # rank 1 wrote nothing: no model, metrics, history or resume state
    assert sorted(p.name for p in node0.iterdir()) == ["history.csv", "metrics.json", "model"]  # resume state gone
    metrics = json.loads((node0 / "metrics.json").read_text())
    # Both processes stopped at the same epoch (a process that went on would wait for the other until killed).
    assert metrics["stopped_early"] and 1 < metrics["epochs_run"] < TRAIN["max_epochs"]
    history = pd.read_csv(node0 / "history.csv")
    assert history["epoch"].tolist() == list(range(metrics["epochs_run"]))

    # Sharded: each process took half of the training documents per epoch, in batches of half the global batch.
    n = len(pd.read_parquet(pipeline / "data/split/source/train.parquet"))
    share, per_process = math.ceil(n / 2), TRAIN["batch_size"] // 2
    for rank in (0, 1):
        line = f"process {rank} of 2: {share} of the {n} training documents per epoch, in batches of {per_process}"
        assert line in _log(clean, "clean", rank)
    assert metrics["steps"] == metrics["epochs_run"] * math.ceil(share / per_process)
    # Then the refit (train.refit, the default) over train + dev, sharded the same way, for the chosen epochs.
    n_dev = len(pd.read_parquet(pipeline / "data/split/source/dev.parquet"))
    assert metrics["refit"] == {"epochs": metrics["best_epoch"] + 1, "documents": n + n_dev,
                                "steps": (metrics["best_epoch"] + 1) * math.ceil(math.ceil((n + n_dev) / 2) / per_process)}

    # The model loads and predicts; it is the refit, which learnt from dev too: it scores dev at least as
    # well as the first fit, which never saw dev, did (the first fit's own weights: test_pipeline.py).
    tok = Tokenizer.load(pipeline / "models/tokenizer")
    model, meta = load_model(node0 / "model", tok.sha256)
    assert meta["train_config"]["num_nodes"] == 2 and meta["refit_on_train_and_dev"]
    _, dev, labels = load_task(pipeline / "data/split/source", pipeline / "data/tokens/source", tok.sha256, 1024)
    assert list(model.config.labels) == labels
    ids, y = collate([dev[i] for i in range(len(dev))])
    with torch.no_grad():
        accuracy = (model(ids).argmax(-1) == y).float().mean().item()
    assert accuracy >= metrics["dev"]["accuracy"]

    # One MLflow run, from rank 0, with one dev/loss per epoch.
    client = MlflowClient(f"sqlite:///{clean / 'mlflow.db'}")
    runs = [r for r in client.search_runs([client.get_experiment_by_name("reprotext").experiment_id])
            if r.info.run_name == "train"]
    assert len(runs) == 1 and runs[0].info.status == "FINISHED"
    assert runs[0].data.params["train.num_nodes"] == "2"
    steps = [m.step for m in client.get_metric_history(runs[0].info.run_id, "dev/loss")]
    assert steps == list(range(metrics["epochs_run"]))


@pytest.mark.slow
def test_a_killed_two_node_run_resumes_only_where_every_node_sees_its_state(pipeline, params, clean, tmp_path,
                                                                            template_db):
    shutil.copy(template_db, tmp_path / "mlflow.db")
    shared = tmp_path / "resume"
    db = tmp_path / "mlflow.db"
    procs = _start_nodes(pipeline, params, tmp_path, (shared, shared), db, "killed")
    deadline = time.monotonic() + 180
    while not (shared / "last.ckpt").exists() and all(p.poll() is None for p in procs):
        assert time.monotonic() < deadline, "no resume checkpoint after 180 s"
        time.sleep(0.02)
    _kill(procs)  # both nodes die after the first epoch's checkpoint, before the run ends
    assert (shared / "last.ckpt").is_file() and not (tmp_path / "node0" / "metrics.json").exists()

    # Node 1 with a disk of its own: it cannot see rank 0's checkpoint, and the two would start at different
    # epochs; both stop with the reason before anything is restored or written.
    codes = _run(pipeline, params, tmp_path, (shared, tmp_path / "node1-disk"), db, "apart")
    assert all(codes)  # torchrun exits 1 when its worker fails (the stage itself exits 2)
    for rank in (0, 1):
        log = _log(tmp_path, "apart", rank)
        assert "error: " in log and "the processes would start from different epochs (rank 0: after epoch" in log
        assert "rank 1: afresh); on several nodes the resume directory must be one that every node shares" in log
    assert (shared / "last.ckpt").is_file() and not (tmp_path / "node1-disk").exists()

    # A directory both nodes share: the run resumes and ends as the uninterrupted one did.
    codes = _run(pipeline, params, tmp_path, (shared, shared), db, "shared")
    assert codes == [0, 0], _log(tmp_path, "shared", 0)[-3000:]
    assert not shared.exists()
    resumed, expected = (json.loads((d / "metrics.json").read_text()) for d in (tmp_path / "node0", clean / "node0"))
    assert resumed == expected
    assert (tmp_path / "node0/history.csv").read_text() == (clean / "node0/history.csv").read_text()
    client = MlflowClient(f"sqlite:///{db}")
    finished = [r for r in client.search_runs([client.get_experiment_by_name("reprotext").experiment_id])
                if r.info.run_name == "train" and r.info.status == "FINISHED"]
    assert len(finished) == 1 and finished[0].data.metrics["resumed_after_epochs"] >= 1
