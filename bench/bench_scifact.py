"""SciFact (BEIR): BM25, the DSSM-style dual encoder and their hybrid on real judged queries, in one run.

The retrieval pipeline's steps (retrieval/dvc.yaml) with retrieval/params.yaml's settings, run in-process on
``../shared/datasets/scifact`` (5,183 abstracts; 809 training claims, of which 20% are held out as dev, and
300 test claims): tokenizer and word2vec over the corpus, BM25 (bm25s, English stop words, Snowball stemmer),
the dual encoder (judged + title + inverse-cloze pairs, BM25 hard negatives; epoch chosen on dev), and the fusion
(method and dense weight chosen on dev). nDCG@10, R@100 and MRR@10 from ir-measures on the test claims.

Search latency: a hybrid index is built with ``reprotext.retrieval.search_index`` (what ``reprotext index`` writes)
and loaded once (``Searcher``, what ``reprotext search --queries -`` holds in a long-lived process); the test
claims are then searched one at a time with each method, so the latency excludes start-up (reported apart).

Skips (exit 0, nothing written) when the dataset is absent. Usage::

    .venv/bin/python bench/bench_scifact.py [--data ../shared/datasets/scifact] [--out bench/results/scifact.json]
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared" / "datasets" / "scifact"
# Published on the same test claims (nDCG@10): BEIR's BM25 and dense retrievers trained on MS MARCO.
PUBLISHED = {"bm25_beir": 0.665, "dpr": 0.318, "ance": 0.507, "tas_b": 0.643, "colbert": 0.671}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, default=DEFAULT_DATA)
    p.add_argument("--params", type=Path, default=ROOT / "retrieval" / "params.yaml")
    p.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "scifact.json")
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args(argv)
    if not (args.data / "qrels" / "test.tsv").is_file():
        print(f"bench_scifact: skipped: {args.data} holds no BEIR collection (qrels/test.tsv)")
        return 0
    torch.set_num_threads(args.threads)

    import pandas as pd

    from reprotext.config import (RETRIEVAL_SECTIONS, BM25Config, CollectionConfig, DSSMConfig, EmbedConfig,
                                  HybridConfig, TokenizeConfig, load_section)
    from reprotext.retrieval import pipeline, search_index
    from reprotext.retrieval.dense import encode
    from reprotext.retrieval.dssm import dense_scores, save_dssm
    from reprotext.retrieval.embedder import load_embedder

    def cfg(name, cls):
        return load_section(name, cls, args.params, RETRIEVAL_SECTIONS)

    timings: dict[str, float] = {}

    def timed(name, fn, *a, **kw):
        start = time.perf_counter()
        out = fn(*a, **kw)
        timings[name] = round(time.perf_counter() - start, 3)
        print(f"bench_scifact: {name}: {timings[name]:.1f}s", flush=True)
        return out

    total = time.perf_counter()
    col_cfg, dssm_cfg, hybrid_cfg = cfg("collection", CollectionConfig), cfg("dssm", DSSMConfig), cfg("hybrid", HybridConfig)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        (work / "collection").mkdir()
        collection = timed("load_seconds", pipeline.prepare_collection, args.data, col_cfg)
        pipeline.save_collection(collection, work / "collection", col_cfg.lowercase)
        saved = pipeline.SavedCollection.load(work / "collection")
        tok, _ = timed("tokenizer_train_seconds", pipeline.train_vocab, saved, cfg("vocab", TokenizeConfig),
                       work / "tokenizer")
        tokens = timed("encode_seconds", pipeline.encode_sets, saved, tok, args.threads)
        w2v = timed("word2vec_seconds", pipeline.train_word2vec, tokens["docs"], tok, cfg("word2vec", EmbedConfig))
        bm25_cfg = cfg("bm25", BM25Config)
        bm25 = timed("bm25_index_seconds", pipeline.build_bm25, saved, bm25_cfg)
        model, history, best, _ = timed("dssm_train_seconds", pipeline.train_dssm, saved, tokens, w2v.vectors,
                                        tok.sha256, bm25, dssm_cfg)
        encoder, max_len = model.encoder, model.config.max_len
        doc_vectors = timed("dense_encode_corpus_seconds", encode, encoder, tokens["docs"], max_len)
        splits = {s: pipeline.split_queries(saved, tokens["queries"], s) for s in ("dev", "test")}
        doc_ids = saved.corpus["id"].tolist()
        result = timed("evaluate_seconds", pipeline.evaluate_methods, bm25,
                       lambda split: dense_scores(encoder, tokens["docs"], split.tokens, max_len, doc_vectors),
                       splits, doc_ids, hybrid_cfg)
        timings["pipeline_total_seconds"] = round(time.perf_counter() - total, 3)

        # Search latency with the index loaded once: what `reprotext index` writes, what `reprotext search` loads.
        save_dssm(model, work / "dssm", {"best_epoch": best, "text": {"lowercase": col_cfg.lowercase, "center": False}})
        embedder = load_embedder(work / "dssm", work / "tokenizer")
        documents = pd.DataFrame({"id": doc_ids, "text": saved.corpus["bm25_text"]})
        fusion = search_index.Fusion(**result["fusion"])
        bm25_settings = {"k1": bm25_cfg.k1, "b": bm25_cfg.b, "stopwords": bm25_cfg.stopwords,
                         "stemmer": bm25_cfg.stemmer}
        timed("index_build_seconds", search_index.build, work / "index", documents, "hybrid", embedder,
              bm25_settings, fusion)
        searcher = timed("index_load_seconds", search_index.Searcher, work / "index")
        queries = splits["test"].texts
        latency, agree = {}, {}
        for method in search_index.METHODS:
            searcher.search(queries[:5], 10, method)  # warm-up
            ms, top1 = [], []
            for q in queries:
                start = time.perf_counter()
                hits = searcher.search([q], 10, method)[0]
                ms.append((time.perf_counter() - start) * 1000)
                top1.append(hits["id"].iloc[0])
            latency[method] = {"median_ms": round(float(np.median(ms)), 3),
                               "p95_ms": round(float(np.percentile(ms, 95)), 3),
                               "queries_per_second": round(len(ms) / (sum(ms) / 1000), 1)}
            agree[method] = top1
        # The saved index must rank as the evaluation did: the first hit of every test claim, hybrid.
        test = splits["test"]
        lexical, dense = bm25.scores(test.texts), dense_scores(encoder, tokens["docs"], test.tokens, max_len,
                                                                doc_vectors)
        from reprotext.retrieval.fusion import fuse

        fused = fuse(dense, lexical, fusion.method, fusion.weight, fusion.depth, fusion.rrf_k)
        expect = [doc_ids[i] for i in np.argmax(fused, axis=1)]
        same_top1 = float(np.mean([a == b for a, b in zip(agree["hybrid"], expect)]))

    t = result["test"]
    out = {
        "bm25": t["bm25"], "dense": t["dense"], "hybrid": {**t["hybrid"], "fusion": result["fusion"]},
        "test_queries": t["queries"],
        "dev": result["dev"], "fusion_grid": result["fusion_grid"],
        "hybrid_minus_bm25_ndcg_at_10": t["hybrid"]["ndcg_at_10"] - t["bm25"]["ndcg_at_10"],
        "dssm": {"best_epoch": best, "history": history, "pairs_per_epoch": history[-1].get("pairs")},
        "timings": {**timings, "scoring": {k: round(v, 3) for k, v in result["seconds"].items()}},
        "search_latency_index_loaded_once": latency,
        "search_index_top1_matches_evaluation": same_top1,
        "published_ndcg_at_10": PUBLISHED,
        "documents": len(doc_ids), "corpus_tokens": int(tokens["docs"].offsets[-1]),
        "settings": {"collection": col_cfg.model_dump(), "bm25": bm25_cfg.model_dump(), "dssm": dssm_cfg.model_dump(),
                     "hybrid": hybrid_cfg.model_dump()},
        "command": " ".join(["python", "bench/bench_scifact.py", *(argv if argv is not None else sys.argv[1:])]),
        "machine": {"cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(), "python": platform.python_version(),
                    "torch": torch.__version__},
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2) + "\n")
    for m in ("bm25", "dense", "hybrid"):
        v = out[m]
        print(f"bench_scifact: {m:<6} nDCG@10 {v['ndcg_at_10']:.4f}  R@100 {v['recall_at_100']:.4f}  "
              f"MRR@10 {v['mrr_at_10']:.4f}  search median {latency[m]['median_ms']:.1f} ms")
    print(f"bench_scifact: wrote {args.out} ({timings['pipeline_total_seconds']:.0f}s for the pipeline)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
