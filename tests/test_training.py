import numpy as np
import pytest
import torch

from reprotext.errors import DataError
from reprotext.models import Classifier, ModelConfig
from reprotext.tokenizer import PAD, TokenArray
from reprotext.training import FitSettings, TokenDataset, collate, encode_labels, fit, seed_everything


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
    dev = TokenDataset(TokenArray(arr.ids, arr.offsets[cut:] ), y[cut:], 64)
    return train, dev, known


def test_fit_learns_a_separable_task(corpus, tokenizer):
    train, dev, known = _task(corpus, tokenizer)
    model = Classifier(ModelConfig("bag", tokenizer.vocab_size, 16, tuple(known)))
    result = fit(model, train, dev, FitSettings(lr=0.05, weight_decay=0, batch_size=16, max_epochs=8, patience=3, seed=0))
    assert result.best["dev/accuracy"] > 0.9
    assert {"train/loss", "dev/loss", "train/accuracy", "dev/accuracy"} <= set(result.history[0])


def test_early_stopping_restores_the_best_epoch(corpus, tokenizer):
    # Few examples, a big learning rate and a wide hidden layer: dev loss bottoms
    # out early and then rises, so training stops and must rewind.
    train, dev, known = _task(corpus, tokenizer)
    small = TokenDataset(TokenArray(train.tokens.ids, train.tokens.offsets[:13]), train.labels[:12], 64)
    model = Classifier(ModelConfig("bag", tokenizer.vocab_size, 32, tuple(known), hidden_dim=256))
    settings = FitSettings(lr=0.05, weight_decay=0, batch_size=4, max_epochs=40, patience=2, seed=0)
    result = fit(model, small, dev, settings)
    losses = [row["dev/loss"] for row in result.history]
    assert len(losses) < 40, "early stopping never fired"
    assert result.best_epoch == int(np.argmin(losses)) < len(losses) - 1
    # The returned model carries the best epoch's weights, not the last epoch's.
    loader_ids, loader_y = collate([dev[i] for i in range(len(dev))])
    with torch.no_grad():
        loss = torch.nn.functional.cross_entropy(model.eval()(loader_ids), loader_y).item()
    assert loss == pytest.approx(min(losses), rel=1e-4)


def test_same_seed_same_result(corpus, tokenizer):
    train, dev, known = _task(corpus, tokenizer)
    settings = FitSettings(lr=0.05, weight_decay=0, batch_size=16, max_epochs=2, patience=3, seed=7)
    runs = []
    for _ in range(2):
        seed_everything(7)
        model = Classifier(ModelConfig("bag", tokenizer.vocab_size, 16, tuple(known)))
        runs.append(fit(model, train, dev, settings).history)
    assert runs[0] == runs[1]
