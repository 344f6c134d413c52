"""End to end: `dvc repro` of the real pipeline on tiny params, in a copy of the repository."""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml
from mlflow.tracking import MlflowClient
from repo_copy import sh, stage_command

from reprotext.models import load_model
from reprotext.tokenizer import Tokenizer
from reprotext.training import collate
from reprotext.training.data import load_task

STAGES = ["prepare", "split", "tokenize", "embed", "pretrain", "train", "finetune", "multitask", "evaluate"]

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
    # train.refit (params.yaml's default): the chosen epochs again, on train + dev
    split = json.loads((repo / "metrics/split.json").read_text())["source"]
    assert train["refit"]["epochs"] == train["best_epoch"] + 1
    assert train["refit"]["documents"] == split["train_docs"] + split["dev_docs"]
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
    assert json.loads(sh(["dvc", "status", "--json", "dvc.yaml"], repo).stdout) == {}


def test_changing_train_params_reruns_only_downstream(repo):
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["train"]["lr"] = 0.05
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    assert sorted(json.loads(sh(["dvc", "status", "--json", "dvc.yaml"], repo).stdout)) == ["train"]
    out = sh(["dvc", "repro"], repo).stdout
    ran = [line.split("'")[1] for line in out.splitlines() if line.startswith("Running stage")]
    assert ran[0] == "train" and ran[-1] == "evaluate" and sorted(ran[1:-1]) == ["finetune", "multitask"]


def test_multitask_stage_trains_a_head_per_task_and_evaluate_scores_them(repo):
    mt = json.loads((repo / "metrics/multitask.json").read_text())
    assert mt["enabled"] and set(mt["tasks"]) == {"source", "target"} and mt["epochs_run"] <= 2
    assert sum(t["sampling_probability"] for t in mt["tasks"].values()) == pytest.approx(1.0)
    assert 0 <= mt["single_task"]["dev"]["accuracy"] <= 1 and set(mt["fewshot"]["k1"]) == {"multitask", "single_task"}
    history = pd.read_csv(repo / "reports/multitask_history.csv")
    assert {"dev/source/accuracy", "dev/target/accuracy", "dev/loss"} <= set(history.columns)
    ev = json.loads((repo / "metrics/evaluate.json").read_text())["multitask"]
    assert ev["tasks"]["source"]["test_docs"] == 40 and 0 <= ev["tasks"]["target"]["test"]["accuracy"] <= 1
    assert 0 <= ev["single_task"]["test"]["accuracy"] <= 1
    report = (repo / "reports/report.md").read_text()
    assert "## Multitask learning" in report and "Closing note:" in report and "1 example per class" in report
    client = MlflowClient(f"sqlite:///{repo}/mlflow.db")
    run = next(r for r in client.search_runs([client.get_experiment_by_name("reprotext").experiment_id])
               if r.info.run_name == "multitask")
    assert [m.step for m in client.get_metric_history(run.info.run_id, "dev/target/accuracy")] == list(
        range(mt["epochs_run"]))
    assert (repo / "models/export/multitask/MLmodel").is_file()


def test_summary_prints_both_tasks(repo):
    out = sh(["reprotext", "summary"], repo).stdout
    assert "source" in out and "target" in out and "test accuracy" in out


def test_default_bag_pretrain_is_the_word2vec_marker(repo):
    meta = json.loads((repo / "models/pretrain/meta.json").read_text())
    assert meta["objective"] == "word2vec" and meta["model"] == "bag"
    assert not (repo / "models/pretrain/encoder.pt").exists()
    assert json.loads((repo / "metrics/pretrain.json").read_text()) == {"model": "bag", "objective": "word2vec"}
    # ... so the few-shot curve keeps its columns (an LM-pretrained bag would be the word2vec-initialised one).
    curve = pd.read_csv(repo / "reports/finetune/fewshot_curve.csv")
    assert list(curve.columns) == ["k", "pretrained", "scratch_random", "scratch_train_init"]


def test_without_refit_the_early_stopped_model_is_saved(repo, tmp_path):
    """train.refit false: the same first fit (same dev scores), and its own weights saved, not the refit's."""
    params = yaml.safe_load((repo / "params.yaml").read_text())
    assert params["train"]["refit"]
    params["train"]["refit"] = False
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    cmd = stage_command(repo, "train") + ["--params", str(tmp_path / "params.yaml")]
    swap = {"models/train": str(tmp_path / "train"), "metrics/train.json": str(tmp_path / "train.json"),
            "reports/train_history.csv": str(tmp_path / "history.csv"), "models/.train-resume": str(tmp_path / "resume")}
    sh([swap.get(a, a) for a in cmd], repo, extra_env={"MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}"})
    alone, refit = (json.loads(p.read_text()) for p in (tmp_path / "train.json", repo / "metrics/train.json"))
    assert alone["refit"] is None and refit["refit"]
    assert alone["dev"] == refit["dev"] and alone["best_epoch"] == refit["best_epoch"]
    (a, meta_a), (b, meta_b) = load_model(tmp_path / "train"), load_model(repo / "models/train")
    assert not meta_a["refit_on_train_and_dev"] and meta_b["refit_on_train_and_dev"]
    head_a, head_b = (dict(m.named_parameters())["head.net.2.weight"] for m in (a, b))
    assert not torch.equal(head_a, head_b)
    # The saved model is the one whose dev scores the metrics give.
    tok = Tokenizer.load(repo / "models/tokenizer")
    _, dev, _ = load_task(repo / "data/split/source", repo / "data/tokens/source", tok.sha256, params["train"]["max_len"])
    ids, y = collate([dev[i] for i in range(len(dev))])
    with torch.no_grad():
        accuracy = (a.eval()(ids).argmax(-1) == y).float().mean().item()
    assert accuracy == pytest.approx(alone["dev"]["accuracy"], abs=1e-6)
    assert not (tmp_path / "resume").exists() and not (tmp_path / "resume-refit").exists()


@pytest.mark.parametrize("model", ["transformer", "rnn", "ffnn"])
def test_tiny_lm_pretrain_then_train_from_it(repo, tmp_path, model):
    """The pretrain stage's real command with train.model set to an LM-pretrained encoder, then train from it."""
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["train"].update(model=model, init="lm", max_len=64, max_epochs=1)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    env = {"MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}"}  # the repository's store stays as dvc left it

    def run(name: str, swap: dict[str, str]) -> None:
        cmd = stage_command(repo, name)
        cmd = [swap.get(a, a) for a in cmd] + ["--params", str(tmp_path / "params.yaml")]
        sh(cmd, repo, extra_env=env)

    kept = ["models/pretrain/meta.json", "metrics/pretrain.json", "models/train/model.pt", "metrics/train.json"]
    before = {p: (repo / p).read_bytes() for p in kept}
    outs = {"models/pretrain": str(tmp_path / "pretrain"), "metrics/pretrain.json": str(tmp_path / "pretrain.json")}
    run("pretrain", outs)
    metrics = json.loads((tmp_path / "pretrain.json").read_text())
    assert metrics["objective"] == {"transformer": "masked_lm", "rnn": "causal_lm", "ffnn": "next_piece"}[model]
    by_epoch = list(metrics["dev_perplexity_by_epoch"].values())
    # A few steps on 400 documents: perplexity falls (beating unigram takes more; tests/test_pretraining.py checks it).
    assert len(by_epoch) == 2 and by_epoch[1] == metrics["dev"]["perplexity"] < by_epoch[0]
    assert 1 < metrics["dev"]["unigram_perplexity"] < 600  # vocab_size 600
    run("train", {**outs, "models/train": str(tmp_path / "train"), "metrics/train.json": str(tmp_path / "train.json"),
                  "reports/train_history.csv": str(tmp_path / "history.csv"),
                  "models/.train-resume": str(tmp_path / "resume")})
    assert json.loads((tmp_path / "train.json").read_text())["epochs_run"] == 1
    if model == "transformer":  # the few-shot curve gains the LM-pretrained (not source-trained) column
        run("finetune", {**outs, "models/train": str(tmp_path / "train"), "models/finetune": str(tmp_path / "ft"),
                         "reports/finetune_history.csv": str(tmp_path / "ft_history.csv"),
                         "reports/finetune": str(tmp_path / "ft_report"),
                         "metrics/finetune.json": str(tmp_path / "ft.json")})
        curve = pd.read_csv(tmp_path / "ft_report/fewshot_curve.csv")
        assert list(curve.columns) == ["k", "lm_pretrained", "pretrained", "scratch_random", "scratch_train_init"]
        assert curve["k"].tolist() == [1, 5] and curve["lm_pretrained"].between(0, 1).all()
        assert set(json.loads((tmp_path / "ft.json").read_text())["fewshot"]["k1"]) == {
            "lm_pretrained", "pretrained", "scratch_random", "scratch_train_init"}
    assert {p: (repo / p).read_bytes() for p in kept} == before  # the repository's own outputs are untouched


def test_an_ensemble_runs_every_stage_after_embed(repo, tmp_path):
    """train.model ensemble (2 bags + 2 CNNs) through the real train, finetune, multitask and evaluate commands."""
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["train"].update(model="ensemble", ensemble={"members": ["bag", "cnn"], "copies": 2}, max_len=64)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    env = {"MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}"}  # the repository's store stays as dvc left it
    outs = {p: str(tmp_path / p.replace("/", "_")) for p in [
        "models/pretrain", "metrics/pretrain.json", "models/train", "metrics/train.json", "reports/train_history.csv",
        "models/.train-resume", "models/finetune", "reports/finetune_history.csv", "reports/finetune",
        "metrics/finetune.json", "models/multitask", "data/multitask", "reports/multitask_history.csv",
        "reports/multitask", "metrics/multitask.json", "reports/evaluate", "reports/report.md", "models/export",
        "metrics/evaluate.json"]}
    kept = ["models/train/model.pt", "metrics/train.json", "metrics/evaluate.json"]
    before = {p: (repo / p).read_bytes() for p in kept}
    for name in ("pretrain", "train", "finetune", "multitask", "evaluate"):
        cmd = [outs.get(a, a) for a in stage_command(repo, name)] + ["--params", str(tmp_path / "params.yaml")]
        sh(cmd, repo, extra_env=env)
    assert json.loads(Path(outs["metrics/pretrain.json"]).read_text()) == {"model": "ensemble", "objective": "word2vec"}
    config = json.loads((Path(outs["models/train"]) / "model.json").read_text())["config"]
    assert config["model"] == "ensemble" and set(config["encoder"]["members"]) == {"bag", "cnn"}
    model, _ = load_model(Path(outs["models/train"]), config["tokenizer_sha256"])
    sizes = {name: p.numel() for name, p in model.named_parameters()}
    tables = [name for name in sizes if name.endswith(("embedding.weight", "ngrams.weight"))]
    assert len(tables) == 6  # 2 bags (pieces, n-grams) + 2 CNNs (pieces): every member's tables are left out
    assert json.loads(Path(outs["metrics/train.json"]).read_text())["parameters_without_embeddings"] == sum(
        n for name, n in sizes.items() if name not in tables)
    ev = json.loads(Path(outs["metrics/evaluate.json"]).read_text())
    assert all(0 <= ev[role]["test"]["accuracy"] <= 1 for role in ("source", "target"))
    assert (Path(outs["models/export"]) / "source/MLmodel").is_file()
    assert {p: (repo / p).read_bytes() for p in kept} == before  # the repository's own outputs are untouched
