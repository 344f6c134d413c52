"""Every encoder: shapes, gradients and padding invariance on odd inputs (length 1, trailing padding, max length)."""
import pytest
import torch
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from reprotext.errors import ArtifactError, ConfigError
import torch.nn.functional as F

from reprotext.models import Classifier, ModelConfig, combine, member_cross_entropy
from reprotext.tokenizer import PAD

MAX_LEN = 12
OPTIONS = {
    "bag": {"pooling": "mean"},
    "bag-max-bigrams": {"pooling": "max", "piece_ngrams": 2, "buckets": 64},
    "ffnn": {"window": 6, "proj_dim": 4, "hidden": [16, 8]},
    "cnn": {"widths": [2, 5], "filters": 6},
    "rnn-lstm-max": {"cell": "lstm", "hidden_size": 8, "layers": 2, "pooling": "max"},
    "rnn-gru-last": {"cell": "gru", "hidden_size": 8, "layers": 2, "pooling": "last"},
    "rnn-lstm-mean-uni": {"cell": "lstm", "hidden_size": 8, "bidirectional": False, "pooling": "mean"},
    "transformer-cls": {"layers": 2, "heads": 2, "ff_dim": 16, "pooling": "cls", "max_positions": MAX_LEN},
    "transformer-mean": {"layers": 1, "heads": 4, "ff_dim": 16, "pooling": "mean", "max_positions": MAX_LEN},
    "ensemble": {"members": {"bag": {"pooling": "mean"}, "cnn": {"widths": [2, 5], "filters": 6}}, "copies": 2},
}


def _model(key: str) -> Classifier:
    torch.manual_seed(0)
    config = ModelConfig(key.split("-")[0], vocab_size=40, embedding_dim=8, labels=("a", "b", "c"), max_len=MAX_LEN,
                         encoder=OPTIONS[key])
    return Classifier(config).eval()


INPUTS = {
    "length-1": [[7]],
    "padding-at-end": [[5, 6, 7, PAD, PAD], [8, 9, PAD, PAD, PAD], [5, 6, 7, 8, 9]],
    "max-length": [list(range(6, 6 + MAX_LEN)), [6] + [PAD] * (MAX_LEN - 1)],
    "all-padding": [[PAD, PAD], [9, PAD]],
}


@pytest.mark.parametrize("key", OPTIONS)
@pytest.mark.parametrize("case", INPUTS)
def test_forward_backward_shapes(key, case):
    model = _model(key).train()
    ids = torch.tensor(INPUTS[case])
    z = model.encoder(ids)
    assert z.shape == (len(ids), model.encoder.out_dim) and torch.isfinite(z).all()
    logits = model.head(z)
    assert logits.shape == (len(ids), 3)
    logits.sum().backward()
    grad = model.encoder.embedding.weight.grad
    assert grad is not None and torch.isfinite(grad).all() and grad[6:10].abs().sum() > 0
    assert grad[PAD].abs().sum() == 0  # the padding vector never learns


@pytest.mark.parametrize("key", OPTIONS)
def test_trailing_padding_does_not_change_a_document(key):
    model = _model(key)
    doc = torch.tensor([[5, 11, 7, 30]])
    padded = torch.tensor([[5, 11, 7, 30] + [PAD] * (MAX_LEN - 4)])
    with torch.no_grad():
        torch.testing.assert_close(model(doc), model(padded), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("key", ["bag", "ffnn", "cnn", "rnn-gru-last", "transformer-cls", "ensemble"])
def test_word_order(key):
    # The bag ignores order; the others (and the bag with bigrams) see it.
    model = _model(key)
    a, b = torch.tensor([[5, 6, 7, 8, 9]]), torch.tensor([[9, 8, 7, 6, 5]])
    with torch.no_grad():
        same = torch.allclose(model(a), model(b), atol=1e-6)
    assert same == (key == "bag")


def test_hashed_bigrams_start_at_zero_and_add_order():
    model = _model("bag-max-bigrams")
    assert model.encoder.ngrams.weight.abs().sum() == 0  # starts as the plain bag
    with torch.no_grad():
        model.encoder.ngrams.weight.normal_()
        assert not torch.allclose(model(torch.tensor([[5, 6, 7]])), model(torch.tensor([[7, 6, 5]])))


def test_transformer_refuses_more_pieces_than_positions_and_bad_heads():
    model = _model("transformer-cls")
    with pytest.raises(ValueError, match="positions for 12"):
        model(torch.ones(1, MAX_LEN + 1, dtype=torch.long))
    with pytest.raises(ConfigError, match="3 heads do not divide the embedding dim 8"):
        Classifier(ModelConfig("transformer", 40, 8, ("a", "b"), encoder={"heads": 3}))


def test_unknown_encoder_option_is_a_clear_error():
    with pytest.raises(ArtifactError, match="cnn encoder options"):
        Classifier(ModelConfig("cnn", 40, 8, ("a", "b"), encoder={"kernel": 3}))
    with pytest.raises(ArtifactError, match="unknown model 'mlp'"):
        Classifier(ModelConfig("mlp", 40, 8, ("a", "b")))


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_rnn_equals_pytorchs_packed_bidirectional_rnn(cell):
    # The unpacked, flip-in-place implementation computes what a packed 2-layer bidirectional RNN does.
    model = _model("rnn-lstm-max" if cell == "lstm" else "rnn-gru-last")
    enc = model.encoder
    layers = len(enc.forward_layers)
    ref = type(enc.forward_layers[0])(8, 8, num_layers=layers, batch_first=True, bidirectional=True)
    with torch.no_grad():
        for i in range(layers):
            for direction, rnn in (("", enc.forward_layers[i]), ("_reverse", enc.backward_layers[i])):
                for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
                    getattr(ref, f"{name}_l{i}{direction}").copy_(getattr(rnn, f"{name}_l0"))
    ids = torch.tensor(INPUTS["padding-at-end"])
    lengths = (ids != PAD).sum(1)
    packed = pack_padded_sequence(enc.embedding(ids), lengths, batch_first=True, enforce_sorted=False)
    expected, _ = pad_packed_sequence(ref(packed)[0], batch_first=True, total_length=ids.shape[1])  # (B, T, 2H)
    with torch.no_grad():
        mask = ids != PAD
        if enc.pooling == "max":
            want = expected.masked_fill(~mask.unsqueeze(-1), float("-inf")).amax(1)
        else:  # last: forward state at the last piece, backward state at the first
            want = torch.cat([expected[torch.arange(len(ids)), lengths - 1, :8], expected[:, 0, 8:]], -1)
        torch.testing.assert_close(enc(ids), want, rtol=1e-5, atol=1e-6)


def test_an_ensemble_is_its_members_side_by_side_each_with_its_own_table_and_head():
    model = _model("ensemble")
    enc = model.encoder
    assert list(enc.members) == ["bag0", "bag1", "cnn0", "cnn1"] and enc.out_dim == 8 + 8 + 12 + 12
    assert enc.embedding is enc.members["bag0"].embedding
    tables = [m.embedding.weight for m in enc.members.values()]
    assert len({id(t) for t in tables}) == 4  # one member's updates never move another's inputs
    for t in tables[1:]:
        torch.testing.assert_close(t, tables[0])  # all start from the same vectors
    ids = torch.tensor(INPUTS["padding-at-end"])
    with torch.no_grad():
        members = model.member_logits(ids)  # (B, K, C)
        assert members.shape == (3, 4, 3)
        for k, (m, head) in enumerate(zip(enc.members.values(), model.head.heads)):
            torch.testing.assert_close(members[:, k], head(m(ids)))  # member k: its own head on its own features
        mean = torch.softmax(members, -1).mean(1)
        torch.testing.assert_close(torch.softmax(model(ids), -1), mean)  # the prediction: their mean distribution


def test_each_ensemble_member_learns_from_its_own_loss_alone():
    model = _model("ensemble").train()
    ids, y = torch.tensor(INPUTS["padding-at-end"]), torch.tensor([0, 1, 2])
    members = model.member_logits(ids)
    loss = member_cross_entropy(members, y)
    expected = torch.stack([F.cross_entropy(members[:, k], y) for k in range(4)]).mean()
    torch.testing.assert_close(loss, expected)
    loss_of_first = torch.autograd.grad(F.cross_entropy(members[:, 0], y), model.head.heads[1].parameters(),
                                        allow_unused=True)
    assert all(g is None or not g.any() for g in loss_of_first)  # member 0's loss never reaches member 1
    lone = torch.randn(3, 1, 3)
    assert torch.equal(combine(lone), lone[:, 0])  # a plain model: its own logits and its own loss, unchanged
    torch.testing.assert_close(member_cross_entropy(lone, y), F.cross_entropy(lone[:, 0], y))


def test_an_ensemble_refuses_a_nested_or_unknown_member():
    with pytest.raises(ArtifactError, match="ensemble members must be among"):
        Classifier(ModelConfig("ensemble", 40, 8, ("a", "b"), encoder={"members": {"ensemble": {}, "bag": {}}}))
    with pytest.raises(ArtifactError, match="at least two members"):
        Classifier(ModelConfig("ensemble", 40, 8, ("a", "b"), encoder={"members": {"bag": {}}, "copies": 1}))
