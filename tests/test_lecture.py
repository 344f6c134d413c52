"""The lecture: the sweep plan, the report writer on recorded results, and `--smoke` end to end."""
from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from reprotext.config import TokenizeConfig
from reprotext.errors import ConfigError
from reprotext.lecture import Experiment, Plan, Result, Sweep, load_plan
from reprotext.lecture import sweep as lecture_sweep
from reprotext.lecture.plan import _value
from reprotext.lecture.common import Figures, beyond_noise, noise, spread, verdict
from reprotext.lecture.lessons import oov
from reprotext.lecture.pipeline_lessons import multitask, ngrams, pretraining, retrieval
from reprotext.lecture.report import write_report
from reprotext.tokenizer import train_tokenizer

ROOT = Path(__file__).resolve().parents[1]


def test_plan_merges_size_then_experiment_then_size_specific_overrides(tmp_path):
    path = tmp_path / "lecture.yaml"
    path.write_text(yaml.safe_dump({
        "sizes": {"small": {"jobs": 3, "set": {"train.max_epochs": 2, "train.lr": 0.1},
                            "only": ["l1", "baseline"], "experiments": {"l1": {"train.lr": 0.2}}}},
        "experiments": {"baseline": {"title": "base", "set": {}}, "l1": {"title": "L1", "set": {"train.l1": 1e-5,
                                                                                                 "train.lr": 0.5}},
                        "cnn": {"set": {"train.model": "cnn"}}}}))
    assert load_plan(path, "small").get("l1").overrides == {"train.max_epochs": 2, "train.lr": 0.2, "train.l1": 1e-5}
    spec = yaml.safe_load(path.read_text())
    spec["if_present"] = {"train.lr": 0.9, "evaluate.retrieval": False}  # the latter is not in these params
    path.write_text(yaml.safe_dump(spec))
    plan = load_plan(path, "small", {"train": {"lr": 0.003, "max_epochs": 15}, "evaluate": {}})
    assert plan.jobs == 3
    assert [e.name for e in plan.experiments] == ["baseline", "l1"]  # the baseline first, always
    assert plan.get("baseline").overrides == {"train.max_epochs": 2, "train.lr": 0.1}
    assert plan.get("l1").overrides == {"train.max_epochs": 2, "train.lr": 0.2, "train.l1": 1e-5}
    assert plan.get("l1").dvc_name("lec-x") == "lec-x-l1"
    with pytest.raises(ConfigError, match="no size 'huge'"):
        load_plan(path, "huge")


def test_the_shipped_plan_is_valid_for_every_size():
    spec = yaml.safe_load((ROOT / "lecture.yaml").read_text())
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    for size in spec["sizes"]:
        plan = load_plan(ROOT / "lecture.yaml", size, params)
        assert plan.experiments[0].name == "baseline"
        for exp in plan.experiments:
            for key in exp.overrides:  # every override names an existing params.yaml key
                section, *path = key.split(".")
                node = params[section]
                for part in path:
                    assert part in node, f"{size}/{exp.name}: {key} is not in params.yaml"
                    node = node[part]
    default = load_plan(ROOT / "lecture.yaml", "default", params)
    assert len([e for e in default.experiments if e.replica_of is None]) == len(spec["experiments"])
    assert default.replicas("baseline") == ["baseline", "baseline-seed1", "baseline-seed2"]  # the noise yardstick


def test_seed_replicas_repeat_an_experiment_with_another_train_seed(tmp_path):
    path = tmp_path / "lecture.yaml"
    spec = {"sizes": {"s": {"set": {"train.lr": 0.1}, "seeds": {"l1": [1, 2]}}},
            "experiments": {"baseline": {"set": {}}, "l1": {"title": "L1", "set": {"train.l1": 1e-5}}}}
    path.write_text(yaml.safe_dump(spec))
    plan = load_plan(path, "s")
    assert [e.name for e in plan.experiments] == ["baseline", "l1", "l1-seed1", "l1-seed2"]
    assert plan.get("l1-seed2").overrides == {"train.lr": 0.1, "train.l1": 1e-5, "train.seed": 2}
    assert plan.get("l1-seed1").replica_of == "l1" and plan.get("l1").replica_of is None
    assert plan.replicas("l1") == ["l1", "l1-seed1", "l1-seed2"] and plan.replicas("baseline") == ["baseline"]
    spec["sizes"]["s"]["seeds"] = {"cnn": [1]}
    path.write_text(yaml.safe_dump(spec))
    with pytest.raises(ConfigError, match=r"seeds to experiments it does not run: \['cnn'\]"):
        load_plan(path, "s")


def test_override_values_are_yaml_for_dvc():
    assert _value([1, 5]) == "[1, 5]"
    assert _value(True) == "true"
    assert _value([]) == "[]"
    assert _value("cnn") == "cnn"
    assert _value(1e-05) == "1e-05"


def test_queue_status_is_parsed(monkeypatch):
    out = ("Task     Name           Created    Status\n"
           "1a2b3c   lec-x-baseline 10:00 AM   Success\n"
           "4d5e6f   lec-x-l1       10:01 AM   Running\n"
           "7a8b9c   lec-x-cnn      10:01 AM   Queued\n"
           "\nWorker status: 1 active, 0 idle\n")
    monkeypatch.setattr(lecture_sweep, "_sh", lambda *a, **k: out)
    assert lecture_sweep.queue_status(Path(".")) == {"lec-x-baseline": "Success", "lec-x-l1": "Running",
                                                     "lec-x-cnn": "Queued"}


def test_oov_counts_unknown_words_for_whole_words_and_none_for_bpe(tmp_path):
    texts = ["the cat sat on the mat", "a dog ran over the hill", "cats and dogs are pets"] * 40
    test = ["the scat sat on the mat"]  # "scat": an unseen word of seen letters
    words = train_tokenizer(texts, TokenizeConfig(model_type="word", vocab_size=64, byte_fallback=False), tmp_path / "w")
    bpe = train_tokenizer(texts, TokenizeConfig(model_type="bpe", vocab_size=300), tmp_path / "b")
    w, b = oov(words, test), oov(bpe, test)
    assert w["words"] == b["words"] == 6
    assert w["oov"] == pytest.approx(1 / 6) and w["split"] == 0 and w["tokens_per_word"] == 1
    assert b["oov"] == 0.0 and b["split"] >= 1 / 6 and b["tokens_per_word"] > 1  # spelled in pieces, never <unk>


def _result(name: str, overrides: dict, acc: float, epochs: int = 4, best: int = 1, **extra) -> Result:
    rng = np.random.default_rng(len(name))
    hist = pd.DataFrame({"epoch": range(epochs), "train/loss": np.linspace(2, 0.1, epochs),
                         "dev/loss": 1 + (np.arange(epochs) - best) ** 2 * 0.1,
                         "train/accuracy": np.linspace(0.3, 0.99, epochs), "dev/accuracy": acc - rng.random(epochs) / 10,
                         "train/steps": (np.arange(epochs) + 1) * 10, "time/elapsed_seconds": np.arange(epochs) + 1.5,
                         "weights/encoder.embedding/l2": np.linspace(10, 20, epochs),
                         "weights/share_below_0.001": np.full(epochs, 0.01), "weights/share_below_0.01": 0.1})
    metrics = {"train/best_epoch": best, "train/epochs_run": epochs, "train/steps": epochs * 10,
               "train/dev/accuracy": acc, "train/dev/loss": 1.0, "evaluate/source/test/accuracy": acc - 0.01,
               "train/parameters": 1000, "train/parameters_without_embeddings": 100, "tokenize/vocab_size": 500,
               "split/source/train_docs": 280, "embed/wordsim353/spearman": 0.2, **extra}
    exp = Experiment(name, f"the {name} experiment", overrides)
    runs = {s: f"{s}-run-{name}" for s in ("tokenize", "embed", "train", "finetune", "evaluate")}
    return Result(exp, f"lec-t-{name}", "Success", parent=f"parent-{name}", parent_status="FINISHED",
                  metrics=metrics, runs=runs, ran=dict(runs), train={"fit_seconds": 3.0}, history=hist)


def test_report_names_every_experiment_and_run_and_says_what_is_missing(tmp_path):
    finetune = {"finetune/runs/pretrained/dev/accuracy": 0.8, "finetune/runs/scratch_random/dev/accuracy": 0.6,
                "finetune/fewshot/k1/pretrained/accuracy_mean": 0.4, "finetune/fewshot/k1/pretrained/accuracy_std": 0.1,
                "finetune/zeroshot/dev/word2vec/accuracy": 0.3, "finetune/zeroshot/dev/majority/accuracy": 0.2,
                "evaluate/target/zeroshot/word2vec/accuracy": 0.31, "evaluate/target/test/accuracy": 0.79}
    results = {"baseline": _result("baseline", {"train.max_epochs": 4}, 0.7, **finetune),
               "overfit": _result("overfit", {"train.max_epochs": 6, "train.patience": 6}, 0.65, epochs=6, best=2),
               "l1": _result("l1", {"train.max_epochs": 4, "train.l1": 1e-5}, 0.68),
               "sgd": _result("sgd", {"train.max_epochs": 4, "train.gd_mode": "sgd"}, 0.6),
               "cnn": _result("cnn", {"train.max_epochs": 4, "train.model": "cnn"}, 0.72)}
    for name, key, value in (("l2", "train.l2", 1e-4), ("dropout", "train.dropout", 0.5), ("wide", "train.hidden_dim", 512),
                             ("batchnorm", "train.batch_norm", True), ("full-batch", "train.gd_mode", "full"),
                             ("rnn", "train.model", "rnn"), ("cbow", "embed.algorithm", "cbow"),
                             ("random-init", "train.embeddings", "random")):
        results[name] = _result(name, {"train.max_epochs": 4, key: value}, 0.5 + len(name) / 100)
    results["cnn"].status = "Failed"
    results["cnn"].parent = None
    results |= {k: v for k, v in _seeded("baseline", {"train.max_epochs": 4}, [0.7, 0.66, 0.73], **finetune).items()
                if k != "baseline"}
    plan = Plan("test", 2, tuple(r.exp for r in results.values()))
    sweep = Sweep("lec-t", plan, f"sqlite:///{tmp_path}/mlflow.db", tmp_path, results,
                  {"started": "2026-01-01T00:00:00+00:00", "seconds": 120.0, "jobs": 2, "cores": 2})
    report = tmp_path / "reports" / "lecture.md"
    write_report(sweep, report, tmp_path / "reports" / "lecture")
    text = report.read_text()
    figures = sorted(p.name for p in (tmp_path / "reports" / "lecture").glob("*.png"))
    assert figures == ["dropout_batchnorm.png", "encoders.png", "gradient_descent.png", "l1_l2.png", "overfitting.png",
                       "pretrained_random.png", "skipgram_cbow.png", "transfer.png"]
    for name in figures:
        assert f"](lecture/{name})" in text
    for name in ("overfit", "l1", "l2", "sgd", "dropout", "rnn", "random-init"):  # each caption names its run
        assert f"`lec-t-{name}`, MLflow train run `train-run-{name}`" in text
    assert "MLflow finetune run `finetune-run-baseline`" in text
    assert "`lec-t-cnn` | — | Failed |" in text  # a failed experiment is named, not silently dropped
    assert "MLflow embed run `embed-run-cbow`" in text
    assert "2.0 minutes wall time" in text
    results["l1"].ran = {}  # restored from an earlier sweep's runs
    results["l1"].runs = {"train": "train-run-old"}
    write_report(sweep, report, tmp_path / "reports" / "lecture")
    assert "and 1 restored from DVC's run cache" in report.read_text()
    text = report.read_text()
    # the summary: one row per verdict, the yardstick of single runs from the baseline's seeds
    assert ("the baseline's test accuracy ranges over 0.070 across its 3 seeds (train.seed; MLflow train runs "
            "`train-run-baseline`, `train-run-baseline-seed1`, `train-run-baseline-seed2`).") in text
    assert "| 1. Overfitting and early stopping | agrees |" in text
    # a section this sweep cannot show still has its row: a missing lesson is not dropped from the count
    assert "| 10. Language-model pretraining | cannot tell |" in text and "| 6. BPE against whole words | cannot tell |" in text
    # equal word-similarity scores: skip-gram is not ahead of CBOW, and the verdict says so
    assert "| 7. Skip-gram against CBOW | does not agree |" in text
    verdicts = text.count("**Does this run agree?**")
    not_shown = sum(line.startswith("Not shown") for line in text.splitlines())
    assert f"of {verdicts + not_shown} agree." in text and verdicts >= 7
    assert "## 6. BPE against whole words" in text and "`words` (not in size test)" in text


@pytest.mark.slow
def test_lecture_smoke_runs_the_sweep_and_leaves_the_workspace_as_it_was(tmp_path):
    from mlflow.tracking import MlflowClient
    from repo_copy import copy_repo, sh

    repo = copy_repo(tmp_path / "repo", {})  # lecture.yaml's smoke size brings its own tiny params
    params = (repo / "params.yaml").read_bytes()
    sh([sys.executable, "-m", "reprotext.lecture", "--smoke"], repo, timeout=600)
    assert (repo / "params.yaml").read_bytes() == params
    changed = subprocess.run(["git", "status", "--porcelain", "--untracked-files=all"], cwd=repo, capture_output=True,
                             text=True, check=True).stdout.split("\n")
    assert all(line[3:].startswith("reports/lecture") for line in filter(None, changed)), changed
    assert not (repo / "models").exists()  # nothing was applied to the workspace

    text = (repo / "reports" / "lecture.md").read_text()
    client = MlflowClient(f"sqlite:///{repo}/mlflow.db")
    exp = client.get_experiment_by_name("reprotext")
    parents = client.search_runs([exp.experiment_id], filter_string="tags.`reprotext.parent` = 'true'")
    names = {r.data.tags["dvc.exp_name"]: r for r in parents}
    assert {n.removeprefix("lec-").split("-", 1)[-1] for n in names} == {"baseline", "overfit", "l1", "words",
                                                                         "baseline-seed1"}
    for name, run in names.items():
        assert run.info.status == "FINISHED", name
        assert f"`{name}`" in text and run.info.run_id in text
    for png in ("overfitting", "l1_l2", "bpe_words", "transfer"):
        assert (repo / "reports" / "lecture" / f"{png}.png").stat().st_size > 10_000
        assert f"](lecture/{png}.png)" in text
    train_runs = {r.data.tags["reprotext.run.train"] for r in names.values()}
    assert all(run_id in text for run_id in train_runs)
    assert "<unk>" in text  # whole-word segmentation examples show unknown words
    assert "Not shown" in text  # the smoke size leaves lessons out and says so


def test_set_params_applies_dotted_keys_and_refuses_unknown_sections(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump({"train": {"lr": 0.003, "rnn": {"hidden_size": 128}}, "embed": {"dim": 100}}))
    lecture_sweep.set_params(path, {"train.rnn.hidden_size": 64, "embed.dim": 16, "train.lr": 0.01})
    assert yaml.safe_load(path.read_text()) == {"train": {"lr": 0.01, "rnn": {"hidden_size": 64}}, "embed": {"dim": 16}}
    with pytest.raises(ConfigError, match="no section 'cnn'"):
        lecture_sweep.set_params(path, {"train.cnn.filters": 8})


def test_parallel_experiments_share_the_cores_unless_the_user_chose(monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(lecture_sweep.os, "cpu_count", lambda: 2)
    assert lecture_sweep.threads(2) == {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    assert lecture_sweep.threads(3)["OMP_NUM_THREADS"] == "1"
    monkeypatch.setenv("OMP_NUM_THREADS", "4")
    assert lecture_sweep.threads(2) == {}


def test_the_multitask_lesson_compares_the_three_on_the_target_task(tmp_path):
    metrics = {"multitask/tasks/target/dev/accuracy": 0.91, "multitask/single_task/dev/accuracy": 0.88,
               "finetune/runs/pretrained/dev/accuracy": 0.90, "multitask/tasks/source/sampling_probability": 0.55,
               "evaluate/multitask/single_task/test/accuracy": 0.87, "evaluate/target/test/accuracy": 0.93,
               "evaluate/multitask/tasks/target/test/accuracy": 0.90,
               "multitask/fewshot/k5/multitask/accuracy_mean": 0.6, "multitask/fewshot/k5/single_task/accuracy_mean": 0.5,
               "finetune/fewshot/k5/pretrained/accuracy_mean": 0.7}
    r = _result("multitask", {"multitask.enabled": True}, 0.7, **metrics)
    r.runs["multitask"] = "multitask-run-multitask"
    sweep = Sweep("lec-t", Plan("test", 2, (r.exp,)), f"sqlite:///{tmp_path}/mlflow.db", tmp_path, {"multitask": r})
    lines = "\n".join(multitask(sweep, Figures(tmp_path / "fig", tmp_path / "report.md")))
    assert "| target test accuracy | 0.870 | 0.930 | 0.900 |" in lines
    assert "| target dev accuracy, k=5 | 0.500 | 0.700 | 0.600 |" in lines
    assert "sequential transfer wins (0.930, +0.030 over multitask)" in lines
    assert "**Does this run agree?** Agrees. At k = 5 the multitask model scores 0.600 against single-task 0.500" in lines
    assert "MLflow multitask run `multitask-run-multitask`" in lines and (tmp_path / "fig" / "multitask.png").is_file()
    del r.metrics["multitask/tasks/target/dev/accuracy"]
    assert "recorded no multitask metrics" in "\n".join(multitask(sweep, Figures(tmp_path / "fig", tmp_path / "r.md")))


def _sweep(tmp_path, results: dict[str, Result], plan: Plan | None = None) -> Sweep:
    plan = plan or Plan("test", 2, tuple(r.exp for r in results.values()))
    return Sweep("lec-t", plan, f"sqlite:///{tmp_path}/mlflow.db", tmp_path, results)


def _seeded(name: str, overrides: dict, accs: list[float], **extra) -> dict[str, Result]:
    """``name`` and its seed replicas, one per accuracy."""
    out = {}
    for i, acc in enumerate(accs):
        r = _result(name if i == 0 else f"{name}-seed{i}", overrides, acc, **extra)
        if i:
            r.exp = Experiment(r.exp.name, r.exp.title, {**overrides, "train.seed": i}, replica_of=name)
        out[r.exp.name] = r
    return out


def test_seed_spread_is_the_yardstick_of_single_runs(tmp_path):
    results = _seeded("baseline", {}, [0.70, 0.72, 0.75])
    sweep = _sweep(tmp_path, results)
    s = spread(sweep, "baseline")
    assert s.seeds == 3 and s.mean("dev") == pytest.approx(0.7233, abs=1e-4)
    assert noise(sweep) == pytest.approx(0.05)  # test accuracy: acc - 0.01 each, max - min
    assert "(range 0.050, 3 seeds)" in s.text("test")
    results["baseline-seed2"].status = "Failed"  # a failed replica is left out, not counted as zero
    assert spread(sweep, "baseline").seeds == 2 and noise(sweep) == pytest.approx(0.02)
    assert not beyond_noise(0.02, 0.02) and beyond_noise(-0.03, 0.02) and beyond_noise(0.001, float("nan"))
    assert math.isnan(noise(_sweep(tmp_path, {"baseline": _result("baseline", {}, 0.7)})))


def test_few_shot_seeds_are_read_from_what_the_stage_recorded():
    from reprotext.lecture.common import fewshot_seeds

    r = _result("baseline", {"finetune.fewshot_seeds": [0, 1, 2]}, 0.7)
    assert fewshot_seeds(r) == 3  # nothing recorded: as the experiment asked
    r.metrics |= {"finetune/fewshot/k1/pretrained/seeds": 2.0, "finetune/fewshot/k5/pretrained/seeds": 2.0}
    assert fewshot_seeds(r) == 2


def test_verdicts_are_collected_for_the_summary(tmp_path):
    figs = Figures(tmp_path / "fig", tmp_path / "r.md")
    assert verdict(figs, "1. X", True, "It did.") == ["**Does this run agree?** Agrees. It did.", ""]
    assert verdict(figs, "2. Y", False, "Reason 0.3.")[0].startswith("**Does this run agree?** Does not agree.")
    assert verdict(figs, "3. Z", None, "Missing.")[0].startswith("**Does this run agree?** Cannot tell.")
    assert figs.verdicts == [("1. X", True, "It did."), ("2. Y", False, "Reason 0.3."), ("3. Z", None, "Missing.")]


def _lm_metrics(perplexities: list[float], unigram: float, few: dict[str, dict[int, float]]) -> dict[str, float]:
    out = {f"pretrain/dev_perplexity_by_epoch/{i}": p for i, p in enumerate(perplexities)}
    out |= {"pretrain/dev/unigram_perplexity": unigram, "pretrain/train_tokens": 1e6, "pretrain/steps": 500}
    for variant, curve in few.items():
        for k, acc in curve.items():
            out[f"finetune/fewshot/k{k}/{variant}/accuracy_mean"] = acc
            out[f"finetune/fewshot/k{k}/{variant}/accuracy_std"] = 0.02
    return out


def test_the_pretraining_lesson_checks_perplexity_and_the_few_shot_gain(tmp_path):
    few = {"lm_pretrained": {1: 0.6, 5: 0.8}, "scratch_train_init": {1: 0.4, 5: 0.7}, "scratch_random": {1: 0.3, 5: 0.5},
           "pretrained": {1: 0.55, 5: 0.75}}
    lm = _result("lm", {"train.model": "transformer", "finetune.fewshot_seeds": [0, 1, 2]}, 0.6,
                 **_lm_metrics([900, 700, 650], 1200, few))
    ffnn = _result("ffnn", {"train.model": "ffnn"}, 0.3, **_lm_metrics([500, 420, 390], 1250, {}))
    sweep = _sweep(tmp_path, {"baseline": _result("baseline", {}, 0.7), "lm": lm, "ffnn": ffnn})
    figs = Figures(tmp_path / "fig", tmp_path / "r.md")
    text = "\n".join(pretraining(sweep, figs))
    assert "| `lm` | transformer | 900 → 700 → 650 | 1200 | 500 |" in text
    assert "| language model | n/a | 0.600 ± 0.020 | 0.800 ± 0.020 |" in text
    assert [a for _, a, _ in figs.verdicts] == [True, True]
    # std 0.02 each over 3 seeds: the standard error of a difference is sqrt(2 * 0.02^2 / 3) = 0.016
    assert "+0.200 ± 0.016 at k = 1, +0.100 ± 0.016 at k = 5." in text
    assert (tmp_path / "fig" / "pretraining.png").is_file()
    lm.metrics["finetune/fewshot/k5/lm_pretrained/accuracy_mean"] = 0.65  # word2vec wins at k = 5
    ffnn.metrics["pretrain/dev_perplexity_by_epoch/2"] = 800  # and a perplexity that rose
    figs = Figures(tmp_path / "fig", tmp_path / "r.md")
    text = "\n".join(pretraining(sweep, figs))
    assert [a for _, a, _ in figs.verdicts] == [False, False]
    assert "-0.050 ± 0.016 at k = 5" in text and "not clearly at k = 5" in text
    lm.metrics["finetune/fewshot/k5/lm_pretrained/accuracy_mean"] = 0.71  # ahead, but within its standard error
    figs = Figures(tmp_path / "fig", tmp_path / "r.md")
    pretraining(sweep, figs)
    assert figs.verdicts[1][1] is False
    del sweep.results["lm"]
    assert "Not shown" in "\n".join(pretraining(sweep, Figures(tmp_path / "fig", tmp_path / "r.md")))


def test_the_ngram_lesson_compares_against_the_seed_spread(tmp_path):
    results = _seeded("baseline", {}, [0.70, 0.71, 0.72])
    results["tfidf"] = _result("tfidf", {"train.bag.pooling": "tfidf"}, 0.74)
    results["ngrams"] = _result("ngrams", {"train.bag.word_ngrams": 2}, 0.78)
    sweep = _sweep(tmp_path, results)
    figs = Figures(tmp_path / "fig", tmp_path / "r.md")
    text = "\n".join(ngrams(sweep, figs))
    assert figs.verdicts[0][1] is True
    assert ("moves test accuracy by +0.070 over the mean of the pieces (TF-IDF-weighted pieces alone: +0.030; the "
            "baseline's seeds move it by up to 0.020).") in text
    results["ngrams"].metrics["evaluate/source/test/accuracy"] = 0.715  # +0.005: inside the seed range
    figs = Figures(tmp_path / "fig", tmp_path / "r.md")
    assert "within what the seed alone moves" in "\n".join(ngrams(sweep, figs)) and figs.verdicts[0][1] is False


def test_the_retrieval_lesson_reads_evaluates_query_by_example_metrics(tmp_path):
    metrics = {f"evaluate/{t}/retrieval/methods/{m}/{k}": v for t in ("source", "target")
               for m, v in (("bm25", 0.3), ("dual_encoder", 0.9), ("tfidf_cosine", 0.35)) for k in ("map_at_100",
                                                                                                    "precision_at_10")}
    r = _result("multitask", {"multitask.enabled": True}, 0.7, **metrics)
    sweep = _sweep(tmp_path, {"multitask": r})
    figs = Figures(tmp_path / "fig", tmp_path / "r.md")
    text = "\n".join(retrieval(sweep, figs))
    assert "| BM25 | 0.300 | 0.300 | 0.300 | 0.300 |" in text and figs.verdicts[0][1] is True
    assert "0.900 against 0.300 (source), 0.900 against 0.300 (target)" in text
    r.metrics["evaluate/target/retrieval/methods/bm25/map_at_100"] = 0.95
    figs = Figures(tmp_path / "fig", tmp_path / "r.md")
    assert "BM25 holds its own" in "\n".join(retrieval(sweep, figs)) and figs.verdicts[0][1] is False
    r.metrics = {k: v for k, v in r.metrics.items() if "retrieval" not in k}
    assert "recorded no retrieval metrics" in "\n".join(retrieval(sweep, Figures(tmp_path / "fig", tmp_path / "r.md")))


def test_bpe_and_words_are_compared_on_the_documents_with_the_most_unknown_words(tmp_path, monkeypatch):
    from reprotext.lecture import lessons

    texts = ["the cat sat on the mat", "a dog ran over the hill", "cats and dogs are pets"] * 40
    words = train_tokenizer(texts, TokenizeConfig(model_type="word", vocab_size=64, byte_fallback=False), tmp_path / "w")
    test = pd.DataFrame({"text": ["the cat sat", "zorg blip the", "a dog ran", "qux quux cat"],
                         "label": ["a", "b", "a", "b"]})
    test.to_parquet(tmp_path / "test.parquet")
    # BPE gets the two documents full of unknown words right, whole words the other two
    pd.DataFrame({"actual": test["label"], "predicted": ["b", "b", "b", "b"]}).to_csv(tmp_path / "bpe.csv", index=False)
    pd.DataFrame({"actual": test["label"], "predicted": ["a", "a", "a", "a"]}).to_csv(tmp_path / "w.csv", index=False)
    files = {("split", "baseline"): "test.parquet", ("evaluate", "baseline"): "bpe.csv", ("evaluate", "words"): "w.csv"}
    monkeypatch.setattr(lessons, "output_file", lambda sweep, r, stage, out, rel: tmp_path / files[(stage, r.exp.name)])
    rs = {"BPE": _result("baseline", {}, 0.7), "whole words": _result("words", {}, 0.7)}
    got = lessons._rare_half(None, rs, words)
    assert got["threshold"] == pytest.approx(1 / 3)  # per document: 0, 2/3, 0, 2/3 unknown; the median
    assert got["BPE"] == 1.0 and got["whole words"] == 0.0 and got["BPE, rest"] == 0.0 and got["whole words, rest"] == 1.0
    pd.DataFrame({"actual": ["b", "a", "a", "b"], "predicted": ["a"] * 4}).to_csv(tmp_path / "w.csv", index=False)
    assert lessons._rare_half(None, rs, words) is None  # predictions of another split (or order) are not compared
