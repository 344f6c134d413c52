"""Retrieval over judged queries on a tiny BEIR collection: BM25, fusion, IR metrics through ir-measures, the
DSSM's loss and training step, and `reprotext index` / `reprotext search`."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from beir_tiny import write_beir

from reprotext import cli
from reprotext.config import DSSMConfig, EmbedConfig, HybridConfig, TokenizeConfig
from reprotext.retrieval import dssm, fusion, ir_metrics, pipeline
from reprotext.retrieval.dual_encoder import PairBatch, contrastive_loss, inverse_cloze, train_on_pairs
from reprotext.retrieval.lexical import BM25Scorer


# ----------------------------------------------------------------------------------------------------- BM25

def test_bm25_stems_and_drops_stop_words_and_round_trips(tmp_path):
    docs = ["the mice were running fast", "a study of cats", "running shoes and the runner"]
    plain = BM25Scorer(docs).scores(["mouse runs"])[0]
    stemmed = BM25Scorer(docs, stopwords="english", stemmer="english")
    s = stemmed.scores(["the runs", "mice"])
    assert plain.max() == 0.0  # no shared surface form
    assert s[0, 0] > 0 and s[0, 2] > 0 and s[0, 1] == 0  # run(s|ning) share a stem; "the" is a stop word
    assert s[1, 0] > 0 and s[1, 1] == 0
    stemmed.save(tmp_path)
    np.testing.assert_allclose(BM25Scorer.load(tmp_path).scores(["the runs", "mice"]), s, rtol=1e-6)


def test_bm25_refuses_an_unknown_stemmer():
    from reprotext.errors import ReprotextError

    with pytest.raises(ReprotextError, match="stemmer 'klingon' is not a Snowball language"):
        BM25Scorer(["a text"], stemmer="klingon")


# --------------------------------------------------------------------------------------------------- fusion

def test_reciprocal_rank_fusion_follows_the_formula():
    dense = np.array([[0.9, 0.1, 0.5]])  # ranks 1, 3, 2
    lexical = np.array([[1.0, 3.0, 2.0]])  # ranks 3, 1, 2
    got = fusion.fuse(dense, lexical, "rrf", 0.25, depth=2, rrf_k=60)
    # depth 2: document 1 is beyond the dense list, document 0 beyond the lexical one.
    want = [0.25 / 61, 0.75 / 61, 0.25 / 62 + 0.75 / 62]
    np.testing.assert_allclose(got[0], want)


def test_convex_fusion_normalises_each_list_and_weights_pick_a_side():
    dense = np.array([[0.9, 0.1, 0.5, 0.3]])
    lexical = np.array([[1.0, 9.0, 5.0, 0.0]])
    np.testing.assert_allclose(fusion.fuse(dense, lexical, "convex", 0.5, depth=4)[0],
                               [0.5 * 1 + 0.5 * 1 / 9, 0.5 * 0 + 0.5 * 1, 0.5 * 0.5 + 0.5 * 5 / 9, 0.5 * 0.25])
    assert np.argmax(fusion.fuse(dense, lexical, "convex", 1.0)) == 0
    assert np.argmax(fusion.fuse(dense, lexical, "convex", 0.0)) == 1
    with pytest.raises(ValueError, match="fusion weight 1.5"):
        fusion.fuse(dense, lexical, "convex", 1.5)


def test_the_fusion_is_chosen_on_dev():
    split = pipeline.Split(["q"], ["x"], None, {"q": {"d1": 1}})
    dense, lexical = np.array([[0.0, 1.0, 0.5]]), np.array([[1.0, 0.0, 0.5]])  # only dense ranks d1 first
    chosen, grid = pipeline.choose_fusion(dense, lexical, split, ["d0", "d1", "d2"],
                                          HybridConfig(methods=("convex",), weights=(0.2, 0.9)))
    assert chosen["weight"] == 0.9 and len(grid) == 2 and grid[1]["ndcg_at_10"] == 1.0


# -------------------------------------------------------------------------------------------------- metrics

def test_metrics_come_from_ir_measures_and_unranked_queries_count_zero():
    qrels = {"a": {"d1": 1}, "b": {"d2": 1, "d0": 1}, "c": {"d0": 1}}
    scores = np.array([[0.1, 0.9, 0.5], [0.2, 0.3, 0.1]])
    run = ir_metrics.run_from_scores(scores, ["a", "b"], ["d0", "d1", "d2"])
    m = ir_metrics.evaluate_run(qrels, run)
    # a: d1 first. b: d1, d0, d2 -> relevant at 2 and 3. c: not in the run -> 0.
    ndcg_b = (1 / math.log2(3) + 1 / math.log2(4)) / (1 + 1 / math.log2(3))
    assert m["ndcg_at_10"] == pytest.approx((1 + ndcg_b + 0) / 3)
    assert m["mrr_at_10"] == pytest.approx((1 + 0.5 + 0) / 3)
    assert m["recall_at_100"] == pytest.approx((1 + 1 + 0) / 3)


# --------------------------------------------------------------------------------------------- dual encoder

def test_contrastive_loss_with_hard_negatives_and_masks():
    q = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    d = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    neg = torch.tensor([[1.0, 1.0]])
    t = 0.5
    got = contrastive_loss(q, d, t, torch.tensor([0, 1]), neg, torch.tensor([7]))
    c = 1 / math.sqrt(2)
    row = -math.log(math.exp(1 / t) / (math.exp(1 / t) + 1 + math.exp(c / t)))  # each query: own, other, negative
    col = -math.log(math.exp(1 / t) / (math.exp(1 / t) + 1))  # documents pick among the queries only
    assert got.item() == pytest.approx(0.5 * (row + col), rel=1e-5)
    # The hard negative is query 0's own document (same key): masked, so only query 1 sees it.
    masked = contrastive_loss(q, d, t, torch.tensor([0, 1]), neg, torch.tensor([0]))
    row0 = -math.log(math.exp(1 / t) / (math.exp(1 / t) + 1))
    assert masked.item() == pytest.approx(0.5 * ((row0 + row) / 2 + col), rel=1e-5)


def test_inverse_cloze_takes_a_span_and_mostly_removes_it():
    doc = np.arange(100, dtype=np.int32)
    rng = np.random.default_rng(0)
    query, rest = inverse_cloze(doc, rng, span=10, keep_prob=0.0)
    assert len(query) == 10 and len(rest) == 90 and not set(query) & set(rest)
    assert len(inverse_cloze(doc, rng, span=10, keep_prob=1.0)[1]) == 100


def test_a_training_step_lowers_the_loss_and_the_best_epoch_is_kept():
    from reprotext.models import Classifier, ModelConfig

    torch.manual_seed(0)
    model = Classifier(ModelConfig(model="bag", vocab_size=50, embedding_dim=8, labels=("r",)))
    # Query i and document i share the ids 10 + i; the rest is noise shared by all.
    queries = [np.array([10 + i, 5], np.int32) for i in range(30)]
    docs = [np.array([10 + i, 6, 7], np.int32) for i in range(30)]
    batch = PairBatch(queries, docs, np.arange(30))
    scores = iter([0.0, 0.3, 0.9, 0.5])
    history, best = train_on_pairs(model.encoder, lambda r: batch, epochs=3, batch_size=10, lr=0.05,
                                   temperature=0.1, max_len=8, seed=0, select=lambda enc: next(scores))
    assert history[1]["train/loss"] > history[3]["train/loss"]
    assert best == 2 and [h["epoch"] for h in history] == [0, 1, 2, 3]


# ------------------------------------------------------------------------------------ pipeline and the CLI

@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """The retrieval pipeline's steps on a tiny BEIR collection, with the dual encoder saved."""
    from reprotext.config import BM25Config, CollectionConfig

    work = tmp_path_factory.mktemp("ir")
    folder = write_beir(work / "beir")
    col = pipeline.prepare_collection(folder, CollectionConfig(dev_fraction=0.3))
    (work / "collection").mkdir()
    pipeline.save_collection(col, work / "collection", True)
    saved = pipeline.SavedCollection.load(work / "collection")
    tok, _ = pipeline.train_vocab(saved, TokenizeConfig(vocab_size=400), work / "tokenizer")
    tokens = pipeline.encode_sets(saved, tok, 1)
    w2v = pipeline.train_word2vec(tokens["docs"], tok, EmbedConfig(dim=16, epochs=1))
    bm25 = pipeline.build_bm25(saved, BM25Config())
    cfg = DSSMConfig(epochs=3, batch_size=16, lr=0.01)
    model, history, best, _ = pipeline.train_dssm(saved, tokens, w2v.vectors, tok.sha256, bm25, cfg)
    dssm.save_dssm(model, work / "dssm", {"text": {"lowercase": True, "center": False}})
    return {"work": work, "folder": folder, "saved": saved, "tokens": tokens, "bm25": bm25, "model": model,
            "history": history, "best": best}


def test_the_dual_encoder_trains_on_judged_and_self_supervised_pairs(trained):
    h = trained["history"]
    assert len(h) == 4 and h[-1]["train/loss"] < h[1]["train/loss"]
    # judged pairs x 4 + a title pair and an inverse-cloze pair per document
    judged = len(trained["saved"].collection.qrels["train"])
    assert h[1]["pairs"] == 4 * judged + 2 * 72
    assert h[trained["best"]]["dev/score"] == max(r["dev/score"] for r in h)


def test_evaluation_reports_all_three_methods_on_test(trained):
    saved, tokens, model = trained["saved"], trained["tokens"], trained["model"]
    splits = {s: pipeline.split_queries(saved, tokens["queries"], s) for s in ("dev", "test")}
    out = pipeline.evaluate_methods(
        trained["bm25"], lambda sp: dssm.dense_scores(model.encoder, tokens["docs"], sp.tokens, 512), splits,
        saved.corpus["id"].tolist(), HybridConfig())
    assert out["test"]["queries"] == 9 and out["fusion"]["method"] in ("rrf", "convex")
    for method in ("bm25", "dense", "hybrid"):
        assert set(out["test"][method]) == {"ndcg_at_10", "recall_at_100", "mrr_at_10"}
        assert 0.0 < out["test"][method]["ndcg_at_10"] <= 1.0
    best_dev = max(g["ndcg_at_10"] for g in out["fusion_grid"])
    assert out["dev"]["hybrid"]["ndcg_at_10"] == pytest.approx(best_dev)


def test_cli_indexes_and_searches_bm25_dense_and_hybrid(trained, tmp_path, capsys):
    work, folder = trained["work"], trained["folder"]
    cli.main(["index", "--method", "hybrid", "--model", str(work / "dssm"), "--tokenizer", str(work / "tokenizer"),
              "--input", str(folder), "--output", str(tmp_path / "hyb"), "--fusion", "rrf", "--weight", "0.3"])
    assert "72 documents (hybrid" in capsys.readouterr().out
    for method in ("bm25", "dense", "hybrid"):
        cli.main(["search", "--index", str(tmp_path / "hyb"), "--method", method, "-k", "3", "fracture bone marker3x1"])
        hits = capsys.readouterr().out.strip().splitlines()
        assert [h.split()[0] for h in hits] == ["1", "2", "3"]
        if method == "bm25":
            assert hits[0].split()[1] == "d3-1"  # the marker word is only in that document
    queries = tmp_path / "q.txt"
    queries.write_text("lung asthma\n\nskin rash\n")
    cli.main(["search", "--index", str(tmp_path / "hyb"), "--queries", str(queries), "-k", "2", "--timing"])
    captured = capsys.readouterr()
    assert captured.out.count("query: ") == 2 and "latency median" in captured.err
    cli.main(["index", "--method", "bm25", "--input", str(folder), "--output", str(tmp_path / "bm")])
    capsys.readouterr()
    with pytest.raises(SystemExit) as exc:
        cli.main(["search", "--index", str(tmp_path / "bm"), "--method", "dense", "x"])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and "built for bm25" in err and len(err.strip().splitlines()) == 1
    with pytest.raises(SystemExit):
        cli.main(["index", "--method", "hybrid", "--input", str(folder), "--output", str(tmp_path / "x")])
    assert "needs --model" in capsys.readouterr().err


def test_the_retrieval_package_has_no_import_circle():
    import ast
    from pathlib import Path

    import reprotext.retrieval as package

    folder = Path(package.__file__).parent
    graph = {}
    for path in folder.glob("*.py"):
        if path.stem == "__init__":
            continue
        deps = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                if node.module.startswith("reprotext.retrieval."):
                    deps.add(node.module.rsplit(".", 1)[1])
                elif node.module == "reprotext.retrieval":
                    deps |= {a.name for a in node.names}
        graph[path.stem] = deps
    assert {"dual_encoder", "embedder", "qbe", "dense"} <= set(graph)

    def visit(node, path):
        assert node not in path, f"import circle: {' -> '.join([*path, node])}"
        for dep in graph.get(node, ()):
            visit(dep, [*path, node])

    for module in graph:
        visit(module, [])


BM25_SCORES_DIGEST = """
import hashlib
import numpy as np
from reprotext.retrieval.lexical import BM25Scorer
rng = np.random.default_rng(0)
words = [f"w{i}" for i in range(800)]
docs = [" ".join(rng.choice(words, rng.integers(5, 120))) for _ in range(400)]
queries = [" ".join(rng.choice(words, 40)) for _ in range(50)]
print(hashlib.sha256(BM25Scorer(docs).scores(queries).tobytes()).hexdigest())
"""


def test_bm25_scores_repeat_whatever_the_processs_string_hash_seed():
    """bm25s numbers terms in set order, which moves with PYTHONHASHSEED; the scores must not (they did, in the
    last float32 digit, so evaluate's BM25 mAP changed from one run to the next)."""
    import os
    import subprocess
    import sys

    digests = {subprocess.run([sys.executable, "-c", BM25_SCORES_DIGEST], capture_output=True, text=True, check=True,
                              env={**os.environ, "PYTHONHASHSEED": seed}).stdout for seed in ("1", "2", "3")}
    assert len(digests) == 1, digests
