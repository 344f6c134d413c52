"""Retrieval: ranking metrics by hand, document vectors, the TF-IDF/BM25 baselines, the index and its CLI."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from reprotext import cli, retrieval, zeroshot
from reprotext.errors import ArtifactError, ConfigError
from reprotext.models import Classifier, ModelConfig, save_model
from reprotext.tokenizer import TokenArray


def test_ranking_metrics_by_hand():
    # Query 1: relevant at ranks 1 and 3, R = 2. Query 2: relevant at ranks 2 and 4, R = 3.
    rel = np.array([[1, 0, 1, 0], [0, 1, 0, 1]], dtype=bool)
    m = retrieval.ranking_metrics(rel, np.array([2, 3]), k_precision=2, k_map=3, k_recall=3)
    np.testing.assert_allclose(m["precision_at_2"], [1 / 2, 1 / 2])
    # AP@3 = sum of precision at the relevant ranks <= 3, over min(R, 3): (1/1 + 2/3) / 2 and (1/2) / 3.
    np.testing.assert_allclose(m["map_at_3"], [(1 + 2 / 3) / 2, (1 / 2) / 3])
    np.testing.assert_allclose(m["recall_at_3"], [2 / 2, 1 / 3])


def test_evaluation_of_scores_by_hand():
    docs = ["a", "b", "a", "c", "b", "b"]
    scores = np.array([[0.9, 0.8, 0.1, 0.7, 0.3, 0.2],  # a: ranks d0 d1 d3 d4 d5 d2 -> relevant at 1 and 6
                       [0.1, 0.2, 0.3, 0.4, 0.5, 0.6],  # b: ranks d5 d4 d3 d2 d1 d0 -> relevant at 1, 2 and 5
                       [0.5, 0.5, 0.5, 0.5, 0.5, 0.5]])  # z: no document has label z
    ev = retrieval.evaluate_scorer(lambda idx: scores[idx], 3, ["a", "b", "z"], docs, batch_size=2)
    r = ev.result()
    assert r["queries"] == 2 and r["queries_without_relevant"] == 1
    assert r["precision_at_10"] == pytest.approx((2 / 10 + 3 / 10) / 2)
    assert r["map_at_100"] == pytest.approx(((1 + 2 / 6) / 2 + (1 + 1 + 3 / 5) / 3) / 2)
    assert r["recall_at_100"] == pytest.approx(1.0)
    curve = ev.curve()  # cutoffs 1, 2, 5 and the collection size 6
    assert curve["retrieved"].tolist() == [1, 2, 5, 6]
    np.testing.assert_allclose(curve["precision"], [(1 + 1) / 2, (1 / 2 + 2 / 2) / 2, (1 / 5 + 3 / 5) / 2,
                                                    (2 / 6 + 3 / 6) / 2])
    np.testing.assert_allclose(curve["recall"], [(1 / 2 + 1 / 3) / 2, (1 / 2 + 2 / 3) / 2, (1 / 2 + 1) / 2, 1.0])
    assert retrieval.recall_ceiling(["a", "b"], docs, k=2) == pytest.approx((1 + 2 / 3) / 2)


def test_equal_scores_rank_the_earlier_document_first():
    ev = retrieval.RankingEvaluation(np.array(["b", "a", "a"]))
    ev.add(np.zeros((1, 3)), ["a"])  # ranking d0 d1 d2: relevant at 2 and 3
    assert ev.result()["map_at_100"] == pytest.approx((1 / 2 + 2 / 3) / 2)


def test_mean_pool_matches_the_per_document_mean():
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(20, 4)).astype(np.float32)
    vectors[0] = 0
    docs = TokenArray.from_lists([[3, 4, 5, 6], [], [7], [0, 9, 9]])
    got = retrieval.mean_pool(vectors, docs, max_len=3)
    want = zeroshot.mean_vectors(vectors, docs, 3)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    assert not got[1].any()


def _bag_model(tokenizer, dim=8, seed=0, labels=("x", "y")) -> Classifier:
    torch.manual_seed(seed)
    config = ModelConfig(model="bag", vocab_size=tokenizer.vocab_size, embedding_dim=dim, labels=tuple(labels),
                         max_len=64, tokenizer_sha256=tokenizer.sha256, encoder={"pooling": "mean"})
    return Classifier(config)


def test_encode_keeps_the_document_order(tokenizer, corpus):
    model = _bag_model(tokenizer)
    docs = tokenizer.encode_array(corpus[0][:50])
    got = retrieval.encode(model.encoder, docs, 64, batch_size=7)  # batches sorted by length, then put back
    with torch.no_grad():
        want = np.stack([model.encoder(torch.as_tensor(docs[i][:64], dtype=torch.long)[None])[0].numpy()
                         for i in range(len(docs))])
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_dense_index_search_is_exact_cosine():
    rng = np.random.default_rng(1)
    docs, queries = rng.normal(size=(50, 6)), rng.normal(size=(3, 6))
    index = retrieval.DenseIndex.build(docs, center=True)
    centred = docs - docs.mean(0)
    want = ((queries - docs.mean(0)) / np.linalg.norm(queries - docs.mean(0), axis=1, keepdims=True)) @ \
        (centred / np.linalg.norm(centred, axis=1, keepdims=True)).T
    np.testing.assert_allclose(index.scores(queries), want, rtol=1e-4, atol=1e-5)
    scores, idx = index.search(queries, 5)
    np.testing.assert_array_equal(idx, np.argsort(-want, axis=1)[:, :5])
    np.testing.assert_allclose(scores, np.sort(want, axis=1)[:, ::-1][:, :5], rtol=1e-4, atol=1e-5)
    assert index.search(queries, 500)[1].shape == (3, 50)


def test_baselines_rank_a_copy_first_and_bm25_matches_bm25s():
    docs = ["rocket launch orbit moon", "goal match league coach", "engine brake wheel dealer",
            "orbit moon telescope planet", "match referee goal stadium"]
    tfidf = retrieval.TfidfScorer(docs)
    bm25 = retrieval.BM25Scorer(docs)
    queries = ["orbit moon telescope planet", "goal referee"]
    for scorer in (tfidf, bm25):
        s = scorer.scores(queries)
        assert s.shape == (2, 5) and s[0].argmax() == 3
    assert tfidf.scores(queries)[0, 3] == pytest.approx(1.0)
    # Each query term once: the sum bm25s itself forms for a query of distinct terms.
    np.testing.assert_allclose(bm25.scores(["goal goal referee"])[0], bm25.model.get_scores(["goal", "referee"]),
                               rtol=1e-6)


def test_evaluate_collection_reports_every_method(tokenizer, corpus):
    texts, labels = corpus
    tokens = tokenizer.encode_array(texts)
    model = _bag_model(tokenizer)
    vectors = model.encoder.embedding.weight.detach().numpy()
    out, curves = retrieval.evaluate_collection(
        {"word2vec": lambda d: retrieval.mean_pool(vectors, d, 64),
         "trained_encoder": lambda d: retrieval.encode(model.encoder, d, 64)},
        TokenArray.from_lists([tokens[i] for i in range(150)]),
        TokenArray.from_lists([tokens[i] for i in range(150, 180)]),
        texts[:150], texts[150:180], labels[:150], labels[150:180])
    assert set(out["methods"]) == {"word2vec", "trained_encoder", "tfidf_cosine", "bm25"} == set(curves)
    for m in out["methods"].values():
        assert m["queries"] == 30 and 0 <= m["map_at_100"] <= 1 and 0 <= m["precision_at_10"] <= 1
    # Topic words decide the label here: both word-based baselines find same-topic documents.
    assert out["methods"]["tfidf_cosine"]["precision_at_10"] > 0.9
    assert out["methods"]["bm25"]["precision_at_10"] > 0.9
    assert out["best_learned"] in ("word2vec", "trained_encoder")
    assert out["recall_at_100_ceiling"] == pytest.approx(retrieval.recall_ceiling(labels[150:180], labels[:150]))


def _write_model(tokenizer, directory, seed):
    save_model(_bag_model(tokenizer, seed=seed), directory, {})


def test_index_and_search_round_trip(tokenizer, corpus, tmp_path, capsys):
    texts, _ = corpus
    pd.DataFrame({"doc_id": [f"d{i}" for i in range(40)], "body": texts[:40]}).to_csv(tmp_path / "docs.csv",
                                                                                      index=False)
    _write_model(tokenizer, tmp_path / "model", seed=0)
    tok_dir = str(tokenizer.path.parent)
    cli.main(["index", "--model", str(tmp_path / "model"), "--tokenizer", tok_dir, "--input",
              str(tmp_path / "docs.csv"), "--output", str(tmp_path / "idx"), "--text-column", "body",
              "--id-column", "doc_id"])
    assert "indexed 40 documents" in capsys.readouterr().out
    saved = retrieval.load_index(tmp_path / "idx")
    assert saved.model["kind"] == "classifier_encoder" and saved.model["tokenizer_sha256"] == tokenizer.sha256
    cli.main(["search", "--index", str(tmp_path / "idx"), "-k", "3", texts[7]])
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 3
    rank, doc_id, score = lines[0].split()[:3]
    assert (rank, doc_id) == ("1", "d7") and float(score) == pytest.approx(1.0, abs=1e-4)
    assert [float(line.split()[2]) for line in lines] == sorted((float(line.split()[2]) for line in lines),
                                                                reverse=True)


def test_piece_embeddings_index(tokenizer, corpus, tmp_path):
    from reprotext.io import FORMAT_VERSION, write_json

    texts, _ = corpus
    rng = np.random.default_rng(0)
    emb = tmp_path / "emb"
    emb.mkdir()
    np.save(emb / "vectors.npy", rng.normal(size=(tokenizer.vocab_size, 8)).astype(np.float32))
    write_json(emb / "meta.json", {"format_version": FORMAT_VERSION, "tokenizer_sha256": tokenizer.sha256})
    embedder = retrieval.load_embedder(emb, tokenizer.path.parent)
    docs = pd.DataFrame({"id": [str(i) for i in range(30)], "text": texts[:30]})
    retrieval.build_index(embedder, docs, tmp_path / "idx")
    hits = retrieval.search(retrieval.load_index(tmp_path / "idx"), embedder, [texts[4]], k=2)[0]
    assert hits["id"].iloc[0] == "4" and embedder.kind == "word2vec"


def test_a_mismatched_model_and_index_is_a_clear_error(tokenizer, corpus, tmp_path, capsys):
    texts, _ = corpus
    pd.DataFrame({"text": texts[:20]}).to_csv(tmp_path / "docs.csv", index=False)
    tok_dir = str(tokenizer.path.parent)
    _write_model(tokenizer, tmp_path / "model", seed=0)
    _write_model(tokenizer, tmp_path / "other", seed=1)
    cli.main(["index", "--model", str(tmp_path / "model"), "--tokenizer", tok_dir, "--input",
              str(tmp_path / "docs.csv"), "--output", str(tmp_path / "idx")])
    for argv in (["--model", str(tmp_path / "other")], []):
        if not argv:  # the model the index names was retrained since
            _write_model(tokenizer, tmp_path / "model", seed=2)
        with pytest.raises(SystemExit) as exc:
            cli.main(["search", "--index", str(tmp_path / "idx"), *argv, "space"])
        assert exc.value.code == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and "weights" in err and "rebuild the index" in err
    with pytest.raises(SystemExit):
        cli.main(["search", "--index", str(tmp_path / "nowhere"), "space"])
    assert "reprotext index" in capsys.readouterr().err
    with pytest.raises(ArtifactError, match="not a saved model"):
        retrieval.load_embedder(tmp_path, tok_dir)


def test_retrieval_params_are_validated():
    from reprotext.config import parse_section

    with pytest.raises(ConfigError, match="finetune.dual_encoder.epoch"):
        parse_section("finetune", {"dual_encoder": {"epoch": 2}})
    with pytest.raises(ConfigError, match="retrieval_bm25_b"):
        parse_section("evaluate", {"retrieval_bm25_b": 2})


def test_a_large_index_searches_with_faiss_when_installed(monkeypatch):
    """faiss-cpu is optional: a stand-in module records that a large index hands its search to IndexFlatIP."""
    import sys
    import types

    calls = []

    class IndexFlatIP:  # the two methods the index uses, exact inner product like faiss's
        def __init__(self, dim):
            self.x = np.zeros((0, dim), np.float32)

        def add(self, x):
            self.x = np.concatenate([self.x, x])

        def search(self, q, k):
            calls.append(len(q))
            s = q @ self.x.T
            idx = np.argsort(-s, axis=1, kind="stable")[:, :k]
            return np.take_along_axis(s, idx, 1), idx.astype(np.int32)

    monkeypatch.setitem(sys.modules, "faiss", types.SimpleNamespace(IndexFlatIP=IndexFlatIP))
    monkeypatch.setattr(retrieval.dense, "FAISS_MIN_DOCS", 100)
    rng = np.random.default_rng(2)
    docs, queries = rng.normal(size=(300, 8)), rng.normal(size=(2, 8))
    small = retrieval.DenseIndex.build(docs[:50])
    small.search(queries, 3)
    assert calls == []
    big = retrieval.DenseIndex.build(docs)
    scores, idx = big.search(queries, 5)
    assert calls == [2] and idx.dtype == np.int64
    np.testing.assert_array_equal(idx, np.argsort(-big.scores(queries), axis=1)[:, :5])
