import json

import numpy as np
import pytest
import torch

from reprotext.errors import ArtifactError
from reprotext.models import BagEncoder, Classifier, DropConnectLinear, ModelConfig, load_model, save_model
from reprotext.tokenizer import PAD

CONFIG = ModelConfig(model="bag", vocab_size=50, embedding_dim=8, labels=("a", "b", "c"), dropout=0.3,
                     tokenizer_sha256="tok")


def test_mean_pooling_ignores_padding():
    emb = torch.nn.Embedding(10, 4, padding_idx=PAD)
    enc = BagEncoder(emb, "mean")
    ids = torch.tensor([[3, 4, PAD, PAD], [3, 4, 5, 6]])
    out = enc(ids)  # (B, D)
    assert out.shape == (2, 4)
    torch.testing.assert_close(out[0], emb.weight[[3, 4]].mean(0))


@pytest.mark.parametrize("pooling", ["mean", "max"])
@pytest.mark.parametrize("ids", [[[7]], [[PAD, PAD]], [[5, 6, PAD], [8, PAD, PAD]]], ids=["len1", "all-pad", "ragged"])
def test_forward_backward_shapes(pooling, ids):
    model = Classifier(ModelConfig(**{**CONFIG.__dict__, "encoder": {"pooling": pooling}}))
    x = torch.tensor(ids)
    logits = model(x)
    assert logits.shape == (len(ids), 3) and torch.isfinite(logits).all()
    logits.sum().backward()
    assert model.encoder.embedding.weight.grad is not None


def test_pretrained_vectors_are_copied_and_can_be_frozen():
    vectors = np.random.default_rng(0).normal(size=(50, 8)).astype(np.float32)
    model = Classifier(CONFIG, vectors, freeze_embeddings=True)
    np.testing.assert_array_equal(model.encoder.embedding.weight.detach().numpy(), vectors)
    assert not model.encoder.embedding.weight.requires_grad
    with pytest.raises(ArtifactError, match="shape"):
        Classifier(CONFIG, vectors[:, :4])


def test_dropout_acts_in_training_only():
    model = Classifier(ModelConfig(**{**CONFIG.__dict__, "dropout": 0.5}))
    x = torch.tensor([[1, 2, 3]])
    model.eval()
    torch.testing.assert_close(model(x), model(x))
    model.train()
    torch.manual_seed(0)
    outs = [model(x) for _ in range(5)]
    assert any(not torch.equal(outs[0], o) for o in outs[1:])


def test_dropconnect_drops_weights_in_training_only():
    torch.manual_seed(0)
    layer = DropConnectLinear(200, 50, p=0.5)
    x = torch.randn(4, 200)
    layer.eval()
    torch.testing.assert_close(layer(x), torch.nn.functional.linear(x, layer.weight, layer.bias))
    layer.train()
    a, b = layer(x), layer(x)
    assert not torch.allclose(a, b)
    # One mask per pass, shared by the batch: an input row of zeros but one unit sees that unit's kept weights only.
    probe = torch.zeros(1, 200)
    probe[0, 3] = 1.0
    kept = (layer(probe) - layer.bias).detach()
    assert ((kept == 0) | torch.isclose(kept, 2 * layer.weight[:, 3].detach())).all() and (kept == 0).any()
    with pytest.raises(ValueError, match="in \\[0, 1\\)"):
        DropConnectLinear(2, 2, p=1.0)


def test_dropconnect_and_batch_norm_in_the_head():
    config = ModelConfig(**{**CONFIG.__dict__, "hidden_dim": 16, "dropout": 0.0, "dropconnect": 0.5,
                            "batch_norm": True})
    model = Classifier(config)
    kinds = [type(m).__name__ for m in model.head.modules()]
    assert kinds.count("DropConnectLinear") == 2 and "BatchNorm1d" in kinds
    x = torch.tensor([[1, 2, 3], [4, 5, PAD]])
    model.eval()
    torch.testing.assert_close(model(x), model(x))
    model.train()
    torch.manual_seed(0)
    assert not torch.equal(model(x), model(x))


@pytest.mark.parametrize("model_name, options", [
    ("bag", {"pooling": "max", "piece_ngrams": 2, "buckets": 32}),
    ("ffnn", {"window": 4, "proj_dim": 3, "hidden": [8]}),
    ("cnn", {"widths": [2, 3], "filters": 4}),
    ("rnn", {"cell": "gru", "hidden_size": 4, "pooling": "last"}),
    ("transformer", {"layers": 1, "heads": 2, "ff_dim": 8, "pooling": "mean", "max_positions": 16}),
])
def test_save_load_round_trip(tmp_path, model_name, options):
    config = ModelConfig(**{**CONFIG.__dict__, "model": model_name, "encoder": options, "max_len": 16,
                            "hidden_dim": 6, "batch_norm": True})
    model = Classifier(config).eval()
    save_model(model, tmp_path, {"best_epoch": 2})
    back, meta = load_model(tmp_path, "tok")
    x = torch.tensor([[1, 2, 3, PAD], [4, 5, 6, 7]])
    torch.testing.assert_close(back(x), model(x))
    assert back.config == config and meta["best_epoch"] == 2 and not back.training


def test_config_of_another_version_is_a_clear_error(tmp_path):
    save_model(Classifier(CONFIG), tmp_path, {})
    meta = json.loads((tmp_path / "model.json").read_text())
    meta["config"]["pooling"] = "mean"  # a field this version does not have
    (tmp_path / "model.json").write_text(json.dumps(meta))
    with pytest.raises(ArtifactError, match="does not match this version"):
        load_model(tmp_path)


def test_wrong_tokenizer_and_corrupted_weights_are_clear_errors(tmp_path):
    save_model(Classifier(CONFIG), tmp_path, {})
    with pytest.raises(ArtifactError, match="trained with tokenizer tok"):
        load_model(tmp_path, "other")
    (tmp_path / "model.pt").write_bytes(b"\x00garbage")
    with pytest.raises(ArtifactError, match="corrupted or incompatible weights"):
        load_model(tmp_path)
