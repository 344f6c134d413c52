import numpy as np
import pytest
import torch

from reprotext.errors import ConfigError
from reprotext.models import Classifier, ModelConfig
from reprotext.tokenizer import TokenArray
from reprotext.training import FitSettings
from reprotext.training.data import TokenDataset
from reprotext.transfer import (GradualUnfreezing, fit_transfer, frozen_groups, halve, layer_groups,
                                sample_per_class, subset, swap_head, transfer_module)


def test_swap_head_keeps_the_encoder_and_resizes_the_head():
    pretrained = Classifier(ModelConfig("bag", 30, 6, ("a", "b", "c", "d"), tokenizer_sha256="t"))
    with torch.no_grad():
        pretrained.encoder.embedding.weight.add_(1.0)  # make the trained weights recognisable
    model = swap_head(pretrained, ["x", "y"], dropout=0.1)
    torch.testing.assert_close(model.encoder.embedding.weight, pretrained.encoder.embedding.weight)
    assert model.encoder.embedding.weight.data_ptr() != pretrained.encoder.embedding.weight.data_ptr()
    assert model.config.labels == ("x", "y") and model.config.tokenizer_sha256 == "t"
    assert model(torch.tensor([[1, 2]])).shape == (1, 2)


@pytest.mark.parametrize("kind,options", [("cnn", {"widths": [2], "filters": 3}),
                                          ("rnn", {"hidden_size": 4}),
                                          ("transformer", {"layers": 1, "heads": 2, "ff_dim": 8, "max_positions": 16})])
def test_swap_head_keeps_every_encoder_weight(kind, options):
    pretrained = Classifier(ModelConfig(kind, 30, 6, ("a", "b", "c"), max_len=16, encoder=options))
    model = swap_head(pretrained, ["x", "y"], dropout=0.0)
    for (name, a), (_, b) in zip(pretrained.encoder.state_dict().items(), model.encoder.state_dict().items()):
        torch.testing.assert_close(a, b, msg=name)
    assert model.head.net[-1].weight.shape[0] == 2


def test_frozen_groups_follows_the_schedule():
    # 3 groups, 2 head-only epochs, then one group thaws every 2 epochs.
    assert [frozen_groups(e, 3, 2, 2) for e in range(9)] == [3, 3, 2, 2, 1, 1, 0, 0, 0]
    assert [frozen_groups(e, 1, 0, 1) for e in range(3)] == [0, 0, 0]


def test_unfreezing_freezes_exactly_the_scheduled_groups():
    model = Classifier(ModelConfig("cnn", 30, 6, ("a", "b"), encoder={"widths": [2, 3], "filters": 3}))
    groups = layer_groups(model)
    assert groups[0] == [model.encoder.embedding.weight]  # the bottom group is the embedding
    callback = GradualUnfreezing(warmup_epochs=1, unfreeze_every=1)
    for epoch in range(len(groups) + 2):
        n_frozen = callback.apply(model, epoch)
        assert n_frozen == frozen_groups(epoch, len(groups), 1, 1)
        for i, group in enumerate(groups):
            assert all(p.requires_grad == (i >= n_frozen) for p in group), (epoch, i)
        assert all(p.requires_grad for p in model.head.parameters())


def _toy_task(n_per_class: int = 12, seed: int = 0) -> TokenDataset:
    rng = np.random.default_rng(seed)
    docs, labels = [], []
    for c in range(2):
        for _ in range(n_per_class):
            docs.append(list(rng.integers(2 + 10 * c, 12 + 10 * c, size=5)))
            labels.append(c)
    return TokenDataset(TokenArray.from_lists(docs), labels, 8)


def test_fit_transfer_leaves_the_encoder_alone_during_warmup_and_trains_it_after():
    pretrained = Classifier(ModelConfig("bag", 30, 6, ("a", "b", "c")))
    ds = _toy_task()
    settings = FitSettings(lr=0.05, weight_decay=0.0, batch_size=8, max_epochs=1, patience=5, seed=0,
                           progress_bar=False)
    model = swap_head(pretrained, ["x", "y"], 0.0)
    head_before = model.head.net[-1].weight.detach().clone()
    _, frozen = fit_transfer(model, ds, ds, settings, warmup_epochs=1, unfreeze_every=1, encoder_lr_factor=0.1)
    assert frozen == [1]
    torch.testing.assert_close(model.encoder.embedding.weight, pretrained.encoder.embedding.weight)
    assert not torch.equal(model.head.net[-1].weight, head_before)
    assert all(p.requires_grad for p in model.parameters())  # the schedule does not leak out of the fit
    model = swap_head(pretrained, ["x", "y"], 0.0)
    _, frozen = fit_transfer(model, ds, ds, settings, warmup_epochs=0, unfreeze_every=1, encoder_lr_factor=0.1)
    assert frozen == [0]
    assert not torch.equal(model.encoder.embedding.weight, pretrained.encoder.embedding.weight)


def test_transfer_module_gives_the_encoder_a_scaled_lr():
    model = Classifier(ModelConfig("bag", 30, 6, ("a", "b")))
    settings = FitSettings(lr=0.01, weight_decay=0.0, batch_size=4, max_epochs=1, patience=1, seed=0)
    groups = transfer_module(0.25)(model, settings).param_groups()
    assert groups[0]["params"] == list(model.head.parameters()) and "lr" not in groups[0]
    assert groups[1]["params"] == list(model.encoder.parameters()) and groups[1]["lr"] == pytest.approx(0.0025)


def test_sampler_picks_exactly_k_per_class_and_is_seeded():
    labels = np.array([0] * 30 + [1] * 20 + [2] * 3)
    idx = sample_per_class(labels, 5, seed=7)
    counts = np.bincount(labels[idx])
    assert counts.tolist() == [5, 5, 3]  # a class with fewer than k gives all it has
    assert len(set(idx.tolist())) == len(idx)
    np.testing.assert_array_equal(idx, sample_per_class(labels, 5, seed=7))
    assert not np.array_equal(idx, sample_per_class(labels, 5, seed=8))
    assert set(sample_per_class(labels, 1, seed=7)) <= set(range(len(labels)))
    with pytest.raises(ConfigError, match="fewshot_k"):
        sample_per_class(labels, 0, seed=7)


def test_halve_is_stratified_disjoint_and_complete():
    labels = np.array([0] * 9 + [1] * 4 + [2])
    a, b = halve(labels, seed=3)
    assert sorted(a.tolist() + b.tolist()) == list(range(len(labels)))
    assert np.bincount(labels[a]).tolist() == [5, 2, 1] and np.bincount(labels[b], minlength=3).tolist() == [4, 2, 0]


def test_subset_keeps_documents_and_labels_together():
    ds = _toy_task(3)
    part = subset(ds, [1, 4])
    assert len(part) == 2 and part.labels.tolist() == [0, 1]
    np.testing.assert_array_equal(part[1][0], ds[4][0])


def test_summarise_curve_gives_mean_and_spread_per_k_and_variant():
    import pandas as pd

    from reprotext.transfer import summarise_curve

    rows = pd.DataFrame([{"k": "all", "variant": "p", "seed": 0, "train_docs": 100, "best_epoch": 3,
                          "accuracy": 0.9, "macro_f1": 0.8}] +
                        [{"k": "5", "variant": v, "seed": s, "train_docs": 10, "best_epoch": 1,
                          "accuracy": a, "macro_f1": a} for v, s, a in [("p", 0, 0.5), ("p", 1, 0.7), ("s", 0, 0.4)]])
    out = summarise_curve(rows)
    assert out["k"].tolist() == ["5", "5", "all"]
    p5 = out[(out["k"] == "5") & (out["variant"] == "p")].iloc[0]
    assert p5["accuracy_mean"] == pytest.approx(0.6) and p5["accuracy_std"] == pytest.approx(0.1414, abs=1e-3)
    assert p5["seeds"] == 2 and out.iloc[-1]["accuracy_std"] == 0.0
