import numpy as np
import pytest
import torch

from reprotext.errors import ArtifactError
from reprotext.models import BagEncoder, Classifier, ModelConfig, load_model, save_model
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
    model = Classifier(ModelConfig(**{**CONFIG.__dict__, "pooling": pooling}))
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


def test_save_load_round_trip(tmp_path):
    model = Classifier(CONFIG).eval()
    save_model(model, tmp_path, {"best_epoch": 2})
    back, meta = load_model(tmp_path, "tok")
    x = torch.tensor([[1, 2, 3, PAD]])
    torch.testing.assert_close(back(x), model(x))
    assert back.config == CONFIG and meta["best_epoch"] == 2


def test_wrong_tokenizer_and_corrupted_weights_are_clear_errors(tmp_path):
    save_model(Classifier(CONFIG), tmp_path, {})
    with pytest.raises(ArtifactError, match="trained with tokenizer tok"):
        load_model(tmp_path, "other")
    (tmp_path / "model.pt").write_bytes(b"\x00garbage")
    with pytest.raises(ArtifactError, match="corrupted or incompatible weights"):
        load_model(tmp_path)
