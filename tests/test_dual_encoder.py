"""The DSSM-style dual encoder: the in-batch contrastive loss, pair sampling, training, and its checkpoint."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch

from reprotext import retrieval
from reprotext.retrieval import dual_encoder
from reprotext.config import DualEncoderOptions
from reprotext.models import Classifier, ModelConfig
from reprotext.tokenizer import TokenArray


def test_contrastive_loss_by_hand():
    q = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    d = torch.tensor([[1.0, 0.0], [1.0, 0.0]])
    # Cosines [[1, 1], [0, 0]] / t. Query 0 cannot tell d0 from d1: -log(1/2); query 1: -log(1/2) as well.
    # Documents: d0 picks q0 with e^(1/t) / (e^(1/t) + 1); d1 wants q1 but scores e^0 against e^(1/t).
    t = 0.5
    e = math.exp(1 / t)
    want = 0.5 * (math.log(2) + 0.5 * (-math.log(e / (e + 1)) - math.log(1 / (e + 1))))
    assert dual_encoder.contrastive_loss(q, d, t).item() == pytest.approx(want, rel=1e-5)
    # Same labels: the other pair is relevant too, so it is no negative and nothing is left to separate.
    assert dual_encoder.contrastive_loss(q, d, t, torch.tensor([3, 3])).item() == pytest.approx(0.0, abs=1e-6)


def test_same_label_pairs_pair_each_document_with_another_of_its_label():
    labels = np.array([0, 0, 1, 1, 1, 2, 0])
    q, d = dual_encoder.same_label_pairs(labels, np.random.default_rng(0))
    assert sorted(q.tolist()) == [0, 1, 2, 3, 4, 6]  # label 2 has one document: no pair
    assert (labels[q] == labels[d]).all() and (q != d).all()


def _encoder(tokenizer, dim=16, seed=0):
    torch.manual_seed(seed)
    config = ModelConfig(model="bag", vocab_size=tokenizer.vocab_size, embedding_dim=dim, labels=("x",),
                         max_len=64, tokenizer_sha256=tokenizer.sha256, encoder={"pooling": "mean"})
    return Classifier(config)


def test_contrastive_training_learns_the_structure_of_a_toy_set(tokenizer, corpus):
    """Documents of three topics from a random bag encoder: the loss falls and same-topic retrieval improves."""
    texts, labels = corpus
    names = sorted(set(labels))
    y = np.array([names.index(label) for label in labels])
    tokens = tokenizer.encode_array(texts)
    train = TokenArray.from_lists([tokens[i] for i in range(150)])
    dev = TokenArray.from_lists([tokens[i] for i in range(150, 180)])
    model = _encoder(tokenizer)

    def score(enc):
        return dual_encoder.dev_map(enc, dev, y[150:180], train, y[:150], 64)

    before = score(model.encoder)
    history, best = dual_encoder.train_dual_encoder(model.encoder, train, None, y[:150], epochs=6, batch_size=16,
                                                    lr=0.05, temperature=0.1, max_len=64, seed=0, select=score)
    losses = [row["train/loss"] for row in history if "train/loss" in row]
    assert len(losses) == 6 and losses[-1] < 0.6 * losses[0]
    assert all(b <= a + 0.05 for a, b in zip(losses, losses[1:]))
    assert history[best]["dev/score"] == max(row["dev/score"] for row in history)
    assert score(model.encoder) == pytest.approx(history[best]["dev/score"])  # the best epoch was restored
    assert score(model.encoder) > before + 0.1


def test_user_pairs_train_and_the_checkpoint_round_trips(tokenizer, corpus, tmp_path):
    texts, labels = corpus
    # Queries: the first half of a document's words; documents: the rest.
    halves = [t.split() for t in texts[:60]]
    pd.DataFrame({"q": [" ".join(w[: len(w) // 2]) for w in halves],
                  "doc": [" ".join(w[len(w) // 2:]) for w in halves]}).to_parquet(tmp_path / "pairs.parquet")
    tokens = tokenizer.encode_array(texts)
    y = np.array([sorted(set(labels)).index(label) for label in labels])
    pretrained = _encoder(tokenizer)
    options = DualEncoderOptions(pairs_file=str(tmp_path / "pairs.parquet"), query_column="q", document_column="doc",
                                 epochs=2, batch_size=16, lr=0.05, temperature=0.1)
    split = [TokenArray.from_lists([tokens[i] for i in r]) for r in (range(120), range(120, 150), range(150, 180))]
    metrics, seconds = dual_encoder.fit_for_retrieval(pretrained, options, split[0], y[:120], split[1], y[120:150],
                                                      split[2], y[150:180], pretrained.encoder, tmp_path / "de",
                                                      tokenizer)
    assert metrics["pairs"].startswith("columns q, doc") and metrics["epochs_run"] == 2 and seconds > 0
    assert metrics["dev"]["gain_map_at_100"] == pytest.approx(
        metrics["dev"]["map_at_100"] - metrics["dev"]["classifier_encoder_map_at_100"])
    encoder, config = dual_encoder.load_encoder(tmp_path / "de", tokenizer.sha256)
    assert config.max_len == 64
    embedder = retrieval.load_embedder(tmp_path / "de", tokenizer.path.parent)
    assert embedder.kind == "dual_encoder"
    np.testing.assert_allclose(embedder.embed_tokens(split[2]), retrieval.encode(encoder, split[2], 64), rtol=1e-6)
    with pytest.raises(Exception, match="tokenizer"):
        dual_encoder.load_encoder(tmp_path / "de", "0" * 64)
