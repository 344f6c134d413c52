import json
import logging
import math
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import lightning as L
import numpy as np
import pandas as pd
import pytest
import torch

import ddp_fit
from ddp_fit import word_task
from reprotext.config import TrainConfig, parse_section
from reprotext.errors import ConfigError, DataError
from reprotext.models import Classifier, ModelConfig, encoder_statistics, load_statistics
from reprotext.tokenizer import PAD, TokenArray
from reprotext.training import (ClassifierModule, FitSettings, TokenDataset, collate, encode_labels, fit,
                                seed_everything)
from reprotext.training.data import EpochShuffleSampler, id_batches
from reprotext.training.history import save_history
from reprotext.training.module import lr_factor


def test_collate_right_pads_to_the_longest():
    ids, y = collate([(np.array([5, 6, 7]), 1), (np.array([8]), 0)])
    assert ids.tolist() == [[5, 6, 7], [8, PAD, PAD]] and y.tolist() == [1, 0]


def test_dataset_truncates_to_max_len():
    ds = TokenDataset(TokenArray.from_lists([[1, 2, 3, 4, 5]]), [0], max_len=3)
    assert ds[0][0].tolist() == [1, 2, 3]


def test_unknown_label_names_it():
    assert encode_labels(["b", "a"], ["a", "b"], "x") == [1, 0]
    with pytest.raises(DataError, match="label 'zz' is not among the 2 labels"):
        encode_labels(["a", "zz"], ["a", "b"], "dev.parquet")


def _task(corpus, tokenizer):
    texts, labels = corpus
    known = sorted(set(labels))
    arr = TokenArray.from_lists(tokenizer.encode(texts))
    y = encode_labels(labels, known, "corpus")
    cut = int(0.7 * len(texts))
    train = TokenDataset(TokenArray(arr.ids, arr.offsets[: cut + 1]), y[:cut], 64)
    dev = TokenDataset(TokenArray(arr.ids, arr.offsets[cut:]), y[cut:], 64)
    return train, dev, known


def _settings(**overrides) -> FitSettings:
    base = FitSettings(lr=0.05, weight_decay=0, batch_size=16, max_epochs=3, patience=3, seed=0, progress_bar=False)
    return replace(base, **overrides)


def _bag(vocab_size: int, known, **overrides) -> Classifier:
    seed_everything(0)
    return Classifier(ModelConfig("bag", vocab_size, 16, tuple(known), **overrides))


def test_fit_learns_a_separable_task(corpus, tokenizer):
    train, dev, known = _task(corpus, tokenizer)
    model = Classifier(ModelConfig("bag", tokenizer.vocab_size, 16, tuple(known)))
    result = fit(model, train, dev, _settings(max_epochs=8))
    assert result.best["dev/accuracy"] > 0.9
    assert {"train/loss", "dev/loss", "train/accuracy", "dev/accuracy"} <= set(result.history[0])


def test_early_stopping_restores_the_best_epoch():
    # Twelve documents with shuffled labels: the model can only memorise them, so
    # train loss falls while dev loss rises; training must stop and rewind.
    train, dev, known, vocab = word_task(train_docs=12)
    noisy = TokenDataset(train.tokens, np.random.default_rng(0).permutation(train.labels), 64)
    model = _bag(vocab, known, hidden_dim=64)
    result = fit(model, noisy, dev, _settings(batch_size=4, max_epochs=40, patience=3))
    losses = [row["dev/loss"] for row in result.history]
    assert len(losses) == result.best_epoch + 4, "early stopping did not fire after patience epochs"
    assert result.stopped_early
    assert result.best_epoch == int(np.argmin(losses))
    assert result.history[-1]["train/loss"] < result.best["train/loss"]  # it went on fitting the noise
    # The returned model carries the best epoch's weights, not the last epoch's.
    ids, y = collate([dev[i] for i in range(len(dev))])
    with torch.no_grad():
        loss = torch.nn.functional.cross_entropy(model.eval()(ids), y).item()
    assert loss == pytest.approx(min(losses), rel=1e-4)


def test_keep_last_runs_every_epoch_and_keeps_the_last_weights(caplog):
    # The refit on train + dev: the epochs were chosen before, so dev getting worse (it memorises shuffled
    # labels, as above) neither stops the run nor rewinds it, and no warning calls it unconverged.
    train, dev, known, vocab = word_task(train_docs=12)
    noisy = TokenDataset(train.tokens, np.random.default_rng(0).permutation(train.labels), 64)
    model = _bag(vocab, known, hidden_dim=64)
    with caplog.at_level("WARNING", logger="reprotext.training.fit"):
        result = fit(model, noisy, dev, _settings(batch_size=4, max_epochs=12, patience=3, keep="last"))
    losses = [row["dev/loss"] for row in result.history]
    assert len(losses) == 12 and int(np.argmin(losses)) < 8  # early stopping would have ended it
    assert result.best_epoch == 11 and not result.stopped_early and "had not converged" not in caplog.text
    ids, y = collate([dev[i] for i in range(len(dev))])
    with torch.no_grad():
        loss = torch.nn.functional.cross_entropy(model.eval()(ids), y).item()
    assert loss == pytest.approx(losses[-1], rel=1e-4)
    with pytest.raises(ValueError, match="keep must be 'best' or 'last'"):
        fit(_bag(vocab, known), train, dev, _settings(keep="first"))


def test_a_fit_frees_its_optimiser_state_and_best_epoch_copy_when_it_returns():
    # A study runs dozens of fits in one process. Each trainer is a reference cycle that only Python's rare
    # full collection frees, so each fit must drop its optimiser's moments and its best-epoch copy itself
    # (3x the model: 1.6 GB with a 1M-row table). No collection runs here until the check.
    import gc
    import weakref

    class Spy(L.Callback):
        def on_train_end(self, trainer, pl_module):
            self.tensors = [weakref.ref(t) for opt in trainer.optimizers for part in getattr(opt, "optimizers", [opt])
                            for state in part.state.values() for t in state.values() if torch.is_tensor(t)]
            stopper = next(c for c in trainer.callbacks if hasattr(c, "best_state"))
            self.tensors += [weakref.ref(t) for t in stopper.best_state.values()]

    train, dev, known, vocab = word_task()
    for sparse in (False, True):  # AdamW alone, and AdamW + the row-sparse Adam of the n-gram table
        spy, model = Spy(), _bag(vocab, known, encoder=dict(piece_ngrams=2, buckets=1000, sparse=sparse))
        gc.disable()
        try:
            fit(model, train, dev, _settings(max_epochs=2), extra_callbacks=[spy])
            assert len(spy.tensors) > 5 and [r() for r in spy.tensors] == [None] * len(spy.tensors)
        finally:
            gc.enable()
        assert all(p.grad is None for p in model.parameters())


def test_a_run_cut_by_max_epochs_is_reported_as_not_converged(caplog):
    train, dev, known, vocab = word_task()
    with caplog.at_level("WARNING", logger="reprotext.training.fit"):
        result = fit(_bag(vocab, known), train, dev, _settings(lr=1e-3, max_epochs=2, patience=3))
    assert not result.stopped_early and result.best_epoch == 1
    assert "had not converged" in caplog.text


def test_min_delta_and_an_accuracy_monitor():
    # Accuracy cannot rise by 0.5 after the first epoch, so no later epoch counts as better.
    train, dev, known, vocab = word_task()
    result = fit(_bag(vocab, known), train, dev,
                 _settings(monitor="dev/accuracy", mode="max", min_delta=0.5, patience=2, max_epochs=10))
    assert len(result.history) == 3 and result.best_epoch == 0


def test_same_seed_same_result(corpus, tokenizer):
    train, dev, known = _task(corpus, tokenizer)
    runs = []
    for _ in range(2):
        seed_everything(7)
        model = Classifier(ModelConfig("bag", tokenizer.vocab_size, 16, tuple(known), dropout=0.3))
        runs.append(fit(model, train, dev, _settings(max_epochs=2, seed=7)).history)
    assert runs[0] == runs[1]


def _penalised_weights(model: Classifier) -> torch.Tensor:
    return torch.cat([p.detach().flatten() for p in model.parameters() if p.ndim >= 2])


def test_train_metrics_are_the_example_weighted_epoch_means():
    # A learning rate too small to move the weights: the epoch's train loss and accuracy are those of the
    # initial model over the whole training set (batches of 16, 16, ..., 14).
    train, dev, known, vocab = word_task()
    model = _bag(vocab, known)
    ids, y = collate([train[i] for i in range(len(train))])
    with torch.no_grad():
        logits = model.eval()(ids)
    row = fit(model, train, dev, _settings(lr=1e-12, max_epochs=1)).history[0]
    assert row["train/loss"] == pytest.approx(torch.nn.functional.cross_entropy(logits, y).item(), rel=1e-5)
    assert row["train/accuracy"] == pytest.approx((logits.argmax(-1) == y).float().mean().item(), abs=1e-6)


class ModeProbe(L.Callback):
    """Records whether the classifier is in training mode during training and validation batches."""

    def __init__(self):
        self.modes: dict[str, set[bool]] = {"train": set(), "dev": set()}

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self.modes["train"].add(pl_module.model.head.net[0].training)

    def on_validation_batch_start(self, trainer, pl_module, batch, batch_idx, dataloader_idx=0):
        self.modes["dev"].add(pl_module.model.head.net[0].training)


def test_dropout_is_on_while_training_only_even_for_a_model_handed_over_in_eval_mode():
    train, dev, known, vocab = word_task()
    model = _bag(vocab, known, dropout=0.5).eval()  # as load_model returns it
    probe = ModeProbe()
    fit(model, train, dev, _settings(max_epochs=1), extra_callbacks=[probe])
    assert probe.modes == {"train": {True}, "dev": {False}} and not model.training


def test_l1_zeroes_weights_and_l2_shrinks_them():
    train, dev, known, vocab = word_task()
    runs = {}
    for name, l1, l2 in (("none", 0.0, 0.0), ("l1", 1e-3, 0.0), ("l2", 0.0, 1e-3)):
        model = _bag(vocab, known, hidden_dim=16)
        result = fit(model, train, dev, _settings(lr=0.02, l1=l1, l2=l2, max_epochs=5, patience=5))
        runs[name] = (_penalised_weights(model), result.history[-1])
    near_zero = {k: float((w.abs() < 1e-2).float().mean()) for k, (w, _) in runs.items()}
    assert near_zero["l1"] > 3 * near_zero["none"]
    assert runs["l2"][0].norm() < 0.8 * runs["none"][0].norm()
    # Each penalty is its own logged term, next to the (unpenalised) cross-entropy.
    assert runs["l1"][1]["train/l1_penalty"] > 0 and "train/l2_penalty" not in runs["l1"][1]
    assert runs["l2"][1]["train/l2_penalty"] > 0 and "train/l1_penalty" not in runs["none"][1]


def test_history_has_lr_and_weight_norms_and_is_saved(tmp_path):
    train, dev, known, vocab = word_task()
    result = fit(_bag(vocab, known, hidden_dim=8), train, dev, _settings(schedule="linear", warmup=0.2, max_epochs=3))
    row = result.history[-1]
    for layer in ("encoder.embedding", "head.net.1.0", "head.net.2"):
        assert row[f"weights/{layer}/l1"] > row[f"weights/{layer}/l2"] > 0
    lrs = [r["train/lr"] for r in result.history]
    assert lrs[0] > lrs[1] > lrs[2] >= 0  # past the warmup, the linear decay
    save_history(result.history, tmp_path / "h.csv", tmp_path / "h.png", result.best_epoch, "t")
    frame = pd.read_csv(tmp_path / "h.csv")
    assert list(frame.columns[:5]) == ["epoch", "train/loss", "dev/loss", "train/accuracy", "dev/accuracy"]
    assert "train/lr" in frame and len(frame) == 3
    assert (tmp_path / "h.png").read_bytes()[:4] == b"\x89PNG"


def test_lr_schedules():
    warm = [lr_factor("constant", 4, 20)(s) for s in range(6)]
    assert warm == [0.25, 0.5, 0.75, 1.0, 1.0, 1.0]
    linear, cosine = lr_factor("linear", 0, 10), lr_factor("cosine", 0, 10)
    assert [linear(s) for s in (0, 5, 10)] == [1.0, 0.5, 0.0]
    assert cosine(0) == 1.0 and cosine(5) == pytest.approx(0.5) and cosine(10) == pytest.approx(0.0)
    assert cosine(2) > linear(2) and cosine(8) < linear(8)


@pytest.mark.parametrize("mode, steps_per_epoch", [("minibatch", 3), ("sgd", 12), ("full", 1)])
def test_gradient_descent_modes_take_their_steps(mode, steps_per_epoch):
    train, dev, known, vocab = word_task(train_docs=12)
    result = fit(_bag(vocab, known), train, dev, _settings(gd_mode=mode, batch_size=5, max_epochs=2, patience=5))
    assert result.steps == 2 * steps_per_epoch


def test_full_batch_step_follows_the_gradient_of_the_whole_training_set():
    # One plain SGD step with lr 1 in "full" mode (micro-batches 5 + 5 + 2) moves the
    # weights by minus the gradient of the mean loss over all 12 documents.
    train, dev, known, vocab = word_task(train_docs=12)
    model = _bag(vocab, known, hidden_dim=8)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    ids, y = collate([train[i] for i in range(len(train))])
    torch.nn.functional.cross_entropy(model(ids), y).backward()
    expected = {k: -p.grad for k, p in model.named_parameters()}
    fit(model, train, dev, _settings(gd_mode="full", batch_size=5, max_epochs=1, optimizer="sgd", momentum=0.0, lr=1.0))
    for name, step in expected.items():
        torch.testing.assert_close(model.state_dict()[name] - before[name], step, rtol=1e-4, atol=1e-6)


def test_batch_norm_survives_a_lone_leftover_example():
    train, dev, known, vocab = word_task(train_docs=11)  # 11 = 2 * 5 + 1
    result = fit(_bag(vocab, known, hidden_dim=8, batch_norm=True), train, dev, _settings(batch_size=5, max_epochs=1))
    assert result.steps == 2


class Killed(Exception):
    """Stands in for SIGKILL in the middle of an epoch."""


# The default bag of params.yaml: tfidf pooling, word bigrams, sparse tables (two optimisers in one to resume).
SPARSE_BAG = {"pooling": "tfidf", "word_ngrams": 2, "min_count": 2, "sparse": True}


def _bag_with_statistics(vocab: int, known, train: TokenDataset, encoder: dict, **overrides) -> Classifier:
    pieces = ["<s>"] * 6 + [f"\u2581w{i}" for i in range(vocab - 6)]
    options, stats = encoder_statistics("bag", encoder, pieces, id_batches(train))
    model = _bag(vocab, known, encoder=options, **overrides)
    load_statistics(model, stats)
    return model


@pytest.mark.parametrize("encoder", [{}, SPARSE_BAG], ids=["bag", "sparse-tfidf-bag"])
def test_kill_and_resume_reaches_the_same_result(tmp_path, monkeypatch, encoder):
    train, dev, known, vocab = word_task()
    settings = _settings(lr=0.02, max_epochs=6, patience=6)
    reference = _bag_with_statistics(vocab, known, train, encoder, dropout=0.3)
    expected = fit(reference, train, dev, settings)

    def die_in_epoch_4(module, *args):
        if module.current_epoch == 3:
            raise Killed

    monkeypatch.setattr(ClassifierModule, "on_train_batch_start", die_in_epoch_4)
    with pytest.raises(Killed):
        fit(_bag_with_statistics(vocab, known, train, encoder, dropout=0.3), train, dev, settings, resume_dir=tmp_path / "resume")
    assert (tmp_path / "resume" / "last.ckpt").is_file()
    monkeypatch.undo()

    resumed_model = _bag_with_statistics(vocab, known, train, encoder, dropout=0.3)
    resumed = fit(resumed_model, train, dev, settings, resume_dir=tmp_path / "resume")
    assert resumed.resumed_after == 3 and resumed.steps == expected.steps
    assert resumed.history == expected.history and resumed.best_epoch == expected.best_epoch
    for name, value in reference.state_dict().items():
        torch.testing.assert_close(resumed_model.state_dict()[name], value, rtol=0, atol=0)
    assert not (tmp_path / "resume").exists()  # removed after a successful run


def test_stale_or_corrupt_resume_state_is_not_resumed(tmp_path, monkeypatch):
    train, dev, known, vocab = word_task()
    settings = _settings(max_epochs=3)

    def die_in_epoch_2(module, *args):
        if module.current_epoch == 1:
            raise Killed

    monkeypatch.setattr(ClassifierModule, "on_train_batch_start", die_in_epoch_2)
    with pytest.raises(Killed):
        fit(_bag(vocab, known), train, dev, settings, resume_dir=tmp_path)
    monkeypatch.undo()
    # Another learning rate: another run, whose history must not start from the killed one.
    other = fit(_bag(vocab, known), train, dev, replace(settings, lr=0.01), resume_dir=tmp_path)
    assert other.resumed_after == 0 and len(other.history) == 3
    monkeypatch.setattr(ClassifierModule, "on_train_batch_start", die_in_epoch_2)
    with pytest.raises(Killed):
        fit(_bag(vocab, known), train, dev, settings, resume_dir=tmp_path)
    monkeypatch.undo()
    (tmp_path / "last.ckpt").write_bytes(b"truncated")
    again = fit(_bag(vocab, known), train, dev, settings, resume_dir=tmp_path)
    assert again.resumed_after == 0 and len(again.history) == 3


def _steps_where_one_process_has_only_empty_documents(n: int, batch: int, epochs: int) -> int:
    count = 0
    for epoch in range(epochs):
        shares = []
        for rank in range(2):
            sampler = EpochShuffleSampler(n, 0, rank, 2)
            sampler.set_epoch(epoch)
            shares.append(list(sampler))
        for start in range(0, len(shares[0]), batch // 2):
            bare = [all(ddp_fit.empty(i) for i in share[start:start + batch // 2]) for share in shares]
            assert not all(bare)  # a step where no process has a feature would step SparseAdam's clock in DDP only
            count += any(bare)
    return count


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["dense", "sparse"])
def test_ddp_with_two_cpu_processes_matches_one(tmp_path, kind):
    # Lightning's DDP launcher re-runs the script for rank 1 (gloo on CPU); each process
    # takes every other example of the epoch's permutation, half the global batch.
    # sparse: the tables' sparse gradients all-reduced, also at steps that give one process none.
    script = Path(__file__).with_name("ddp_fit.py")
    for devices in (1, 2):
        proc = subprocess.run([sys.executable, str(script), str(devices), str(tmp_path / f"{devices}.json"), kind],
                              capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-20000:]  # both ranks write here: keep rank 1
    one, two = (json.loads((tmp_path / f"{d}.json").read_text()) for d in (1, 2))
    batch = 16 if kind == "dense" else ddp_fit.SPARSE_BATCH
    assert one["steps"] == two["steps"] == 3 * math.ceil(126 / batch)
    if kind == "sparse":
        assert _steps_where_one_process_has_only_empty_documents(126, batch, 3) > 0
    for a, b in zip(one["history"], two["history"], strict=True):
        assert b["dev/loss"] == pytest.approx(a["dev/loss"], rel=1e-4)
        assert b["dev/accuracy"] == pytest.approx(a["dev/accuracy"], abs=1e-6)
    for name, total in one["weights"].items():
        assert two["weights"][name] == pytest.approx(total, rel=1e-4, abs=1e-5)


def test_train_config_checks_combinations():
    assert parse_section("train", {}) == TrainConfig()
    cnn = parse_section("train", {"model": "cnn", "cnn": {"widths": [2, 3]}})
    assert cnn.encoder_options() == {"widths": [2, 3], "filters": 100}
    bad = [({"monitor": "dev/accuracy"}, "set train.mode: max"),
           ({"model": "transformer"}, "lower train.max_len"),
           ({"batch_norm": True, "gd_mode": "sgd"}, "batch norm needs batches"),
           ({"devices": 0}, "fix train.devices"),
           ({"rnn": {"cell": "tanh"}}, "train.rnn.cell"),
           ({"pooling": "mean"}, "unknown key 'train.pooling'")]
    for values, message in bad:
        with pytest.raises(ConfigError, match=message):
            parse_section("train", values)
    assert parse_section("train", {"model": "transformer", "max_len": 512}).encoder_options()["max_positions"] == 512


def test_no_progress_bar_where_stdout_is_no_terminal_but_a_line_per_epoch(corpus, tokenizer, capfd, caplog):
    """Lightning's bar redraws every step; in a log (pytest's captured stdout) one line per epoch instead."""
    train, dev, known = _task(corpus, tokenizer)
    caplog.set_level(logging.INFO, logger="reprotext.training.callbacks")
    fit(Classifier(ModelConfig("bag", tokenizer.vocab_size, 16, tuple(known))), train, dev,
        _settings(max_epochs=2, progress_bar=True))
    out = capfd.readouterr()
    assert "Epoch 0" not in out.out + out.err
    lines = [r.getMessage() for r in caplog.records if r.name == "reprotext.training.callbacks"]
    assert [line.split(":")[0] for line in lines] == ["epoch 1/2", "epoch 2/2"] and "dev/accuracy" in lines[-1]


def test_fit_is_quiet_about_lightnings_advert_and_its_own_deprecations(corpus, tokenizer, caplog, recwarn):
    train, dev, known = _task(corpus, tokenizer)
    caplog.set_level(logging.INFO)
    fit(Classifier(ModelConfig("bag", tokenizer.vocab_size, 16, tuple(known))), train, dev, _settings(max_epochs=1))
    assert any(r.name.startswith("lightning") for r in caplog.records)  # Lightning's other info still comes through
    assert not [r.getMessage() for r in caplog.records if "litlogger" in r.getMessage()]
    assert not [str(w.message) for w in recwarn if "LeafSpec" in str(w.message)]


def test_weight_stats_off_leaves_them_out_of_the_history_and_changes_nothing_else(corpus, tokenizer):
    """The few-shot study turns the per-epoch weight statistics off: same training, no weights/ columns."""
    train, dev, known = _task(corpus, tokenizer)
    runs = {}
    for stats in (True, False):
        model = _bag(tokenizer.vocab_size, known)
        runs[stats] = (fit(model, train, dev, _settings(weight_stats=stats)), model)
    with_stats, without = runs[True][0].history, runs[False][0].history
    assert any(k.startswith("weights/") for k in with_stats[0])
    assert not any(k.startswith("weights/") for k in without[0])
    assert [{k: v for k, v in row.items() if not k.startswith("weights/")} for row in with_stats] == without
    assert all(torch.equal(a, b) for a, b in zip(runs[True][1].state_dict().values(),
                                                 runs[False][1].state_dict().values()))
