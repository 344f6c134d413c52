"""Multitask learning: the sampler's rules, one head per task's batches, save/load, the export, bad params."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from reprotext.config import ExtraTaskOptions, PrepareConfig, SplitConfig, parse_section
from reprotext.errors import ArtifactError, ConfigError, DataError
from reprotext.evaluation import predict_tokens
from reprotext.models import ModelConfig
from reprotext.multitask import (MultitaskClassifier, MultitaskSettings, TaskBatchSampler, fit_multitask,
                                 load_multitask, save_multitask, task_probabilities)
from reprotext.multitask.data import prepare_extra
from reprotext.multitask.report import comparison, seed_spread, verdict
from reprotext.tokenizer import TokenArray
from reprotext.training.data import TokenDataset

VOCAB = 200


def test_proportional_probabilities_are_the_task_shares():
    np.testing.assert_allclose(task_probabilities([900, 90, 10], "proportional"), [0.9, 0.09, 0.01])
    # The temperature is ignored by the proportional rule, and T = 1 is the proportional rule.
    np.testing.assert_allclose(task_probabilities([900, 90, 10], "proportional", 5.0), [0.9, 0.09, 0.01])
    np.testing.assert_allclose(task_probabilities([900, 90, 10], "temperature", 1.0), [0.9, 0.09, 0.01])


def test_temperature_probabilities_follow_n_to_the_one_over_t():
    sizes = np.array([10_000, 1_000, 10])
    p = task_probabilities(sizes, "temperature", 5.0)
    expected = sizes ** 0.2 / (sizes ** 0.2).sum()
    np.testing.assert_allclose(p, expected)
    assert p[2] > 10 / sizes.sum() * 10  # the small task is upsampled ...
    assert p[0] < 10_000 / sizes.sum()  # ... the large one downsampled
    nearly_uniform = task_probabilities(sizes, "temperature", 1e6)
    np.testing.assert_allclose(nearly_uniform, [1 / 3] * 3, atol=1e-4)


@pytest.mark.parametrize("rule,temperature", [("proportional", 1.0), ("temperature", 5.0)])
def test_sampler_draws_tasks_in_the_rule_s_proportions(rule, temperature):
    sizes = [1000, 100, 10]
    p = task_probabilities(sizes, rule, temperature)
    steps = 20_000
    sampler = TaskBatchSampler(sizes, 4, p, steps, seed=3)
    ends = np.cumsum(sizes)
    counts = np.zeros(3)
    for batch in sampler:
        tasks = np.searchsorted(ends, batch, side="right")
        assert len(set(tasks.tolist())) == 1  # one task per batch
        counts[tasks[0]] += 1
    sigma = np.sqrt(steps * p * (1 - p))
    assert (np.abs(counts - steps * p) < 4 * sigma).all(), (counts / steps, p)


def test_sampler_walks_each_task_in_passes_and_repeats_for_a_seed():
    sizes, batch = [12, 5], 4
    sampler = TaskBatchSampler(sizes, batch, [0.5, 0.5], 40, seed=0)
    batches = list(sampler)
    assert batches == list(TaskBatchSampler(sizes, batch, [0.5, 0.5], 40, seed=0))
    sampler.set_epoch(1)
    assert list(sampler) != batches  # a new epoch draws anew
    small = [i - 12 for b in batches for i in b if i >= 12]
    for start in range(0, len(small) - 5, 5):  # every pass over the small task holds each document once
        assert sorted(small[start:start + 5]) == list(range(5))
    assert all(len(b) == batch for b in batches)


def _disjoint_tasks(n: int = 24) -> tuple[dict[str, TokenDataset], dict[str, tuple[str, ...]]]:
    """Task a's documents use piece ids 10-59, task b's 100-149: a batch's ids tell its task."""
    rng = np.random.default_rng(0)
    sets, labels = {}, {"a": ("x", "y", "z"), "b": ("no", "yes")}
    for name, low in (("a", 10), ("b", 100)):
        k = len(labels[name])
        docs = [rng.integers(low, low + 50, size=rng.integers(3, 12)).tolist() for _ in range(n)]
        y = [i % k for i in range(n)]
        # The label is readable from the first piece, so the tasks can be learnt.
        docs = [[low + 40 + yi] + d for d, yi in zip(docs, y)]
        sets[name] = TokenDataset(TokenArray.from_lists(docs), y, 32)
    return sets, labels


def _model(labels, dropout: float = 0.0) -> MultitaskClassifier:
    config = ModelConfig("bag", VOCAB, 8, (), dropout=dropout, max_len=32, tokenizer_sha256="t" * 64,
                         encoder={"pooling": "mean"})
    torch.manual_seed(0)
    return MultitaskClassifier(config, labels)


def _settings(sizes, **kw) -> MultitaskSettings:
    base = dict(lr=0.05, batch_size=4, max_epochs=2, patience=2, seed=0,
                probabilities=tuple(task_probabilities(sizes, "temperature", 2.0)), progress_bar=False)
    return MultitaskSettings(**{**base, **kw})


def test_each_head_sees_only_its_task_s_batches():
    sets, labels = _disjoint_tasks()
    model = _model(labels)
    calls: list[tuple[str, torch.Tensor]] = []
    ids_seen: list[torch.Tensor] = []
    model.encoder.register_forward_pre_hook(lambda m, args: ids_seen.append(args[0].clone()))
    for name, head in model.heads.items():
        head.register_forward_hook(lambda m, args, out, name=name: calls.append(name))
    result = fit_multitask(model, [sets["a"], sets["b"]], [sets["a"], sets["b"]], _settings([24, 24]))
    assert len(calls) == len(ids_seen) > 0
    for head, ids in zip(calls, ids_seen):
        real = ids[ids > 0]  # PAD is 0
        low = 10 if head == "a" else 100
        assert ((real >= low) & (real < low + 50)).all(), f"head {head} got another task's documents"
    assert set(calls) == {"a", "b"}
    assert result.history and {"dev/a/accuracy", "dev/b/accuracy", "dev/a/loss", "train/b/loss"} <= set(
        result.history[0])


def test_a_step_updates_only_the_head_of_its_task():
    sets, labels = _disjoint_tasks()
    model = _model(labels)
    before = {n: [p.detach().clone() for p in h.parameters()] for n, h in model.heads.items()}
    # One step, and the sampler is told to draw task b only.
    fit_multitask(model, [sets["a"], sets["b"]], [sets["a"], sets["b"]],
                  _settings([24, 24], probabilities=(0.0, 1.0), steps_per_epoch=1, max_epochs=1))
    changed = {n: any(not torch.equal(a, b) for a, b in zip(before[n], h.parameters())) for n, h in model.heads.items()}
    assert changed == {"a": False, "b": True}


def test_multitask_training_learns_both_tasks_and_stops_on_a_chosen_task():
    sets, labels = _disjoint_tasks(60)
    model = _model(labels)
    result = fit_multitask(model, [sets["a"], sets["b"]], [sets["a"], sets["b"]],
                           _settings([60, 60], max_epochs=8, lr=0.1, stop_on="b", monitor="accuracy"))
    best = result.best
    assert best["dev/a/accuracy"] > 0.6 and best["dev/b/accuracy"] > 0.8
    assert best["dev/accuracy"] == pytest.approx((best["dev/a/accuracy"] + best["dev/b/accuracy"]) / 2)
    assert result.best_epoch == max(range(len(result.history)), key=lambda e: (result.history[e]["dev/b/accuracy"], -e))
    with pytest.raises(ConfigError, match="stop_on 'c'"):
        fit_multitask(model, [sets["a"], sets["b"]], [sets["a"], sets["b"]], _settings([60, 60], stop_on="c"))


def test_saved_and_loaded_model_predicts_the_same(tmp_path):
    sets, labels = _disjoint_tasks()
    model = _model(labels, dropout=0.3)
    fit_multitask(model, [sets["a"], sets["b"]], [sets["a"], sets["b"]], _settings([24, 24], max_epochs=1))
    save_multitask(model, tmp_path / "m", {"best_epoch": 0})
    loaded, meta = load_multitask(tmp_path / "m", "t" * 64)
    assert loaded.task_labels == model.task_labels and meta["best_epoch"] == 0
    for name in ("a", "b"):
        expected = predict_tokens(model.task_model(name), sets[name].tokens)
        np.testing.assert_allclose(predict_tokens(loaded.task_model(name), sets[name].tokens), expected, rtol=1e-6)
        assert expected.shape == (24, len(labels[name]))
    with pytest.raises(ArtifactError, match="tokenizer"):
        load_multitask(tmp_path / "m", "u" * 64)
    (tmp_path / "m" / "multitask.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ArtifactError, match="corrupted"):
        load_multitask(tmp_path / "m")
    with pytest.raises(ArtifactError, match="no task 'c'"):
        model.task_model("c")


@pytest.mark.parametrize("values,message", [
    ({"stop_on": "r52"}, "stop_on 'r52' must be one of mean, source, target"),
    ({"temperature": 0.5}, "multitask.temperature = 0.5"),
    ({"sampling": "uniform"}, "multitask.sampling = 'uniform'"),
    ({"fewshot_k": [0]}, "fewshot_k 0 must be >= 1"),
    ({"fewshot_stop_on": "all"}, "fewshot_stop_on 'all' must be one of mean, source, target"),
    ({"epoch_dev_docs": 0}, "multitask.epoch_dev_docs = 0"),
    ({"extra_tasks": [{"name": "a b", "path": "x.csv"}]}, "extra task name 'a b'"),
    ({"extra_tasks": [{"name": "target", "path": "x.csv"}]}, "'target' is reserved"),
    ({"extra_tasks": [{"name": "r52", "path": "a.csv"}, {"name": "r52", "path": "b.csv"}]}, "listed twice"),
    ({"extra_tasks": [{"name": "r52"}]}, "multitask.extra_tasks.0.path"),
    ({"temprature": 2}, "did you mean 'temperature'"),
])
def test_bad_params_are_one_clear_error(values, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_section("multitask", values)


def test_an_extra_task_is_cleaned_and_split(tmp_path, corpus):
    texts, labels = corpus
    path = tmp_path / "extra.csv"
    pd.DataFrame({"body": texts, "topic": labels}).to_csv(path, index=False)
    task = prepare_extra(ExtraTaskOptions(name="topics", path=str(path), text_column="body", label_column="topic"),
                         PrepareConfig(), SplitConfig())
    sizes = {k: len(v) for k, v in task.parts.items()}
    assert task.labels == sorted(set(labels)) and sum(sizes.values()) == len(set(texts))
    assert sizes["train"] > sizes["dev"] > sizes["test"] > 0
    seen = set(task.parts["train"]["text"])
    assert not seen & set(task.parts["test"]["text"])
    with pytest.raises(DataError, match=r"multitask.extra_tasks\[gone\].path"):
        prepare_extra(ExtraTaskOptions(name="gone", path=str(tmp_path / "missing.csv")), PrepareConfig(), SplitConfig())
    with pytest.raises(DataError, match="topic"):
        prepare_extra(ExtraTaskOptions(name="bad", path=str(path), text_column="body"), PrepareConfig(), SplitConfig())


def test_the_report_names_the_winner_and_the_margin():
    dev = {"tasks": {"target": {"dev": {"accuracy": 0.90, "macro_f1": 0.80}}}, "single_task": {"dev": {
        "accuracy": 0.85, "macro_f1": 0.70}}, "fewshot_seeds": [0], "fewshot": {"k5": {
            "multitask": {"accuracy_mean": 0.6, "macro_f1_mean": 0.5},
            "single_task": {"accuracy_mean": 0.4, "macro_f1_mean": 0.3}}}}
    test = {"tasks": {"target": {"test": {"accuracy": 0.91, "macro_f1": 0.81}}},
            "single_task": {"test": {"accuracy": 0.86, "macro_f1": 0.71}}}
    finetune = {"runs": {"pretrained": {"dev": {"accuracy": 0.93, "macro_f1": 0.83}}}}
    evaluate = {"target": {"test": {"accuracy": 0.95, "macro_f1": 0.85}}}
    rows = pd.DataFrame({"k": ["5", "5", "5"], "variant": ["pretrained", "pretrained", "scratch_random"],
                         "seed": [0, 1, 0], "accuracy": [0.7, 0.1, 0.0], "macro_f1": [0.6, 0.1, 0.0]})
    table = comparison({"dev": dev, "test": test}, evaluate, finetune, rows)
    assert table["test accuracy, all training data"] == {"single-task (scratch)": 0.86,
                                                         "sequential transfer (fine-tuned)": 0.95, "multitask": 0.91}
    # finetune's few-shot mean is taken over the multitask stage's seeds only (seed 0: 0.7, not 0.4).
    assert table["dev accuracy, 5 examples per class"]["sequential transfer (fine-tuned)"] == pytest.approx(0.7)
    line = verdict(table["test accuracy, all training data"], "test accuracy", 100)
    assert line == ("test accuracy: **sequential transfer (fine-tuned)** wins with 0.950; multitask 0.910 (-0.040, "
                    "4 documents of 100 fewer), single-task (scratch) 0.860 (-0.090, 9 documents of 100 fewer)")
    assert verdict({"a": 0.5, "b": 0.5, "c": None}, "x") == "x: a and b tie at 0.500"
    assert seed_spread(rows, 5) == pytest.approx(np.std([0.7, 0.1], ddof=1)) and seed_spread(rows, 1) is None


def test_the_exported_pyfunc_predicts_each_row_with_its_task_s_head(tokenizer, tmp_path):
    import mlflow
    from mlflow.exceptions import MlflowException

    from reprotext.evaluation import predict_proba
    from reprotext.multitask import export

    labels = {"topic": ("cars", "space", "sport"), "short": ("long", "short")}
    config = ModelConfig("bag", tokenizer.vocab_size, 8, (), tokenizer_sha256=tokenizer.sha256)
    torch.manual_seed(0)
    model = MultitaskClassifier(config, labels).eval()
    save_multitask(model, tmp_path / "model", {})
    example = pd.DataFrame({"text": ["rocket orbit", "goal"], "task": ["topic", "short"]})
    export.save(tmp_path / "model", tokenizer.path, labels, example, tmp_path / "pyfunc")
    pyfunc = mlflow.pyfunc.load_model(str(tmp_path / "pyfunc"))
    texts = ["rocket launch orbit", "the  engine\tbrake", "goal", ""]
    tasks = ["topic", "short", "topic", "short"]
    out = pyfunc.predict(pd.DataFrame({"text": texts, "task": tasks}))
    probs = [f"prob_{t}.{label}" for t, names in labels.items() for label in names]
    assert list(out.columns) == ["task", "label", *probs] and out["task"].tolist() == tasks
    normalised = ["rocket launch orbit", "the engine brake", "goal", ""]
    for t, names in labels.items():
        rows = [i for i, task in enumerate(tasks) if task == t]
        expected = predict_proba(model.task_model(t), tokenizer, [normalised[i] for i in rows])
        got = out.loc[rows, [f"prob_{t}.{label}" for label in names]].to_numpy()
        np.testing.assert_allclose(got, expected, rtol=1e-5)
        assert out.loc[rows, "label"].tolist() == [names[i] for i in expected.argmax(1)]
        other = [c for c in probs if not c.startswith(f"prob_{t}.")]
        assert out.loc[rows, other].isna().all().all()  # another task's columns stay empty
    with pytest.raises(MlflowException, match="'task'"):  # the signature's check, or ours
        pyfunc.predict(pd.DataFrame({"text": ["goal"]}))
    with pytest.raises(MlflowException, match="task 'sports' is not one of"):
        pyfunc.predict(pd.DataFrame({"text": ["goal"], "task": ["sports"]}))


def test_switched_off_the_stage_writes_markers_and_evaluate_skips_it(tmp_path):
    import json

    import yaml
    from repo_copy import run_stages

    from reprotext.multitask.scoring import score_test

    (tmp_path / "params.yaml").write_text(yaml.safe_dump({"multitask": {"enabled": False}}))
    outs = {"--out": "models/multitask", "--data-out": "data/multitask", "--report": "reports/multitask",
            "--history": "reports/multitask_history.csv", "--metrics": "metrics/multitask.json"}
    ins = {"--splits": "data/split", "--tokenizer": "models/tokenizer", "--tokens": "data/tokens",
           "--trained": "models/train", "--embeddings": "models/embeddings"}  # none of them exists: none is read
    [done] = run_stages([(tmp_path, ["multitask", *[x for kv in {**ins, **outs}.items() for x in kv]])])
    assert done.returncode == 0, done.stderr
    assert json.loads((tmp_path / "metrics/multitask.json").read_text()) == {"enabled": False}
    for d in ("models/multitask", "data/multitask", "reports/multitask"):
        assert (tmp_path / d / "disabled.json").is_file()
    assert score_test(tmp_path / "models/multitask", None, None, tmp_path / "data/split", None, None) is None
    # the stage never ran (a stage script run outside DVC)
    assert score_test(tmp_path / "nothing-here", None, None, tmp_path / "data/split", None, None) is None


def test_a_run_repeats_for_its_seed():
    sets, labels = _disjoint_tasks()
    states = []
    for _ in range(2):
        model = _model(labels, dropout=0.3)
        fit_multitask(model, [sets["a"], sets["b"]], [sets["a"], sets["b"]], _settings([24, 24]))
        states.append(model.state_dict())
        torch.rand(5)  # randomness drawn in between changes nothing: each epoch reseeds
    assert states[0].keys() == states[1].keys()
    assert all(torch.equal(states[0][k], states[1][k]) for k in states[0])


def test_the_stage_trains_an_extra_task_and_evaluate_scores_its_test_split(tmp_path, tokenizer, corpus):
    """The multitask stage's real command on tiny artefacts with an extra task, then evaluate's multitask scoring."""
    import json

    import yaml
    from repo_copy import run_stages

    from reprotext.config import EmbedConfig, EvaluateConfig
    from reprotext.data.split import split_frame
    from reprotext.data.store import read_frame, write_frame
    from reprotext.embeddings import EmbedResult
    from reprotext.embeddings import save as save_embeddings
    from reprotext.models import Classifier, save_model
    from reprotext.tokenizer import Tokenizer
    from reprotext.multitask.scoring import score_test

    texts, labels = corpus
    frame = pd.DataFrame({"text": texts, "label": labels}).drop_duplicates("text").reset_index(drop=True)
    sha = tokenizer.sha256
    for role, task in (("source", frame), ("target", frame.assign(label=np.where(frame["label"] == "space",
                                                                                    "space", "other")))):
        parts = split_frame(task, SplitConfig(), where=role).parts
        for split, part in parts.items():
            (tmp_path / "data/split" / role).mkdir(parents=True, exist_ok=True)
            write_frame(part, tmp_path / "data/split" / role / f"{split}.parquet", {})
            if split != "test":
                tokenizer.encode_array(part["text"].tolist()).save(tmp_path / "data/tokens" / role / split, sha)
    config = ModelConfig("bag", tokenizer.vocab_size, 8, ("cars", "space", "sport"), max_len=64, tokenizer_sha256=sha,
                         encoder={"pooling": "mean"})
    save_model(Classifier(config), tmp_path / "models/train", {"train_config": {"embeddings": "pretrained"}})
    vectors = np.random.default_rng(0).normal(size=(tokenizer.vocab_size, 8)).astype(np.float32)
    save_embeddings(tmp_path / "models/embeddings", EmbedResult(vectors, np.ones(len(vectors), bool), [], 0.0, 0),
                    EmbedConfig(dim=8), sha)
    (tmp_path / "models/tokenizer").mkdir(parents=True)
    (tmp_path / "models/tokenizer" / tokenizer.path.name).write_bytes(tokenizer.path.read_bytes())
    pd.DataFrame({"body": texts, "topic": labels}).to_csv(tmp_path / "extra.csv", index=False)
    extra = {"name": "topics", "path": str(tmp_path / "extra.csv"), "text_column": "body", "label_column": "topic"}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump({"multitask": {
        "max_epochs": 2, "steps_per_epoch": 6, "batch_size": 8, "fewshot_k": [2], "fewshot_seeds": [0],
        "extra_tasks": [extra]}}))
    argv = {"--splits": "data/split", "--tokenizer": "models/tokenizer", "--tokens": "data/tokens",
            "--trained": "models/train", "--embeddings": "models/embeddings", "--out": "models/multitask",
            "--data-out": "data/multitask", "--report": "reports/multitask",
            "--history": "reports/multitask_history.csv", "--metrics": "metrics/multitask.json"}
    [done] = run_stages([(tmp_path, ["multitask", *[x for kv in argv.items() for x in kv]])])
    assert done.returncode == 0, done.stderr[-3000:]
    metrics = json.loads((tmp_path / "metrics/multitask.json").read_text())
    assert set(metrics["tasks"]) == {"source", "target", "topics"} and metrics["epochs_run"] <= 2
    assert metrics["tasks"]["topics"]["classes"] == 3 and set(metrics["fewshot"]["k2"]) == {"multitask", "single_task"}
    test = read_frame(tmp_path / "data/multitask/topics/test.parquet")
    scored = score_test(tmp_path / "models/multitask", tmp_path / "data/multitask", tmp_path / "metrics/multitask.json",
                        tmp_path / "data/split", EvaluateConfig(), Tokenizer.load(tmp_path / "models/tokenizer"))
    assert scored["test"]["tasks"]["topics"]["test_docs"] == len(test) > 0
    assert 0 <= scored["test"]["single_task"]["test"]["accuracy"] <= 1
    assert list(scored["example"]["task"]) == ["source", "target", "topics"]
