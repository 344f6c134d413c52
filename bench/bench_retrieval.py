"""Benchmark the retrieval index: build throughput and search latency over 100,000 documents.

The collection is the builtin 20 Newsgroups and R8 text, cycled up to ``--docs``
documents (each a distinct id; the cost of tokenizing and embedding a document
does not depend on whether its text repeats). The model is the pipeline's
``--model`` (default ``models/train``, the trained classifier's encoder) with
its tokenizer; when the pipeline has not run, an untrained bag model of the
default size over a tokenizer trained here (the weights do not change the cost).

- build: ``reprotext.retrieval.build_index`` end to end: tokenization, encoding,
  centring and normalising, writing the index directory; docs/s. Tokenizing and
  encoding are also timed on their own.
- search: ``--queries`` single-query calls of ``reprotext.retrieval.search`` on
  the loaded index (tokenize + encode the query, exact cosine against every
  document, top ``-k``), one at a time as `reprotext search` runs them;
  p50/p99/mean latency in ms. The vector part alone (score + top-k of an
  already encoded query) is reported beside it.

Exact search is numpy (one matrix-vector product over all documents); with
``faiss-cpu`` installed and at least ``reprotext.retrieval.FAISS_MIN_DOCS``
documents, the index searches with ``faiss.IndexFlatIP`` (also exact) and the
results say which ran.

    .venv/bin/python bench/bench_retrieval.py [--docs 100000] [--queries 500] [--threads 1]
        [--model models/train --tokenizer models/tokenizer] [--out bench/results/retrieval.json]
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
import pandas as pd
import torch

from reprotext import retrieval
from reprotext.config import TokenizeConfig
from reprotext.data.sources import read_builtin
from reprotext.models import Classifier, ModelConfig, save_model
from reprotext.tokenizer import train_tokenizer

ROOT = Path(__file__).resolve().parents[1]


def collection(n: int) -> pd.DataFrame:
    texts = pd.concat([read_builtin("20newsgroups")["text"], read_builtin("reuters-r8")["text"]]).astype(str)
    texts = texts[texts.str.strip() != ""].tolist()
    return pd.DataFrame({"id": [f"doc{i}" for i in range(n)], "text": [texts[i % len(texts)] for i in range(n)]})


def untrained(work: Path, texts: list[str]) -> tuple[Path, Path]:
    tok = train_tokenizer(texts[:20000], TokenizeConfig(vocab_size=16000), work / "tokenizer")
    torch.manual_seed(0)
    config = ModelConfig(model="bag", vocab_size=tok.vocab_size, embedding_dim=100, labels=("a", "b"), max_len=1024,
                         tokenizer_sha256=tok.sha256, encoder={"pooling": "mean"})
    save_model(Classifier(config), work / "model", {"bench": "untrained"})
    return work / "model", work / "tokenizer"


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--docs", type=int, default=100_000)
    p.add_argument("--queries", type=int, default=500)
    p.add_argument("-k", type=int, default=10)
    p.add_argument("--threads", type=int, default=1, help="torch threads (the machine is shared: 1 by default)")
    p.add_argument("--model", type=Path, default=ROOT / "models/train")
    p.add_argument("--tokenizer", type=Path, default=ROOT / "models/tokenizer")
    p.add_argument("--out", type=Path, default=ROOT / "bench/results/retrieval.json")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    docs = collection(args.docs)
    with tempfile.TemporaryDirectory(prefix="bench-retrieval-") as tmp:
        work = Path(tmp)
        model, tokenizer, trained = args.model, args.tokenizer, True
        if not (model.is_dir() and tokenizer.is_dir()):
            model, tokenizer, trained = *untrained(work, docs["text"].tolist()), False
        embedder = retrieval.load_embedder(model, tokenizer)
        texts = docs["text"].tolist()

        start = time.perf_counter()
        tokens = embedder.tokenizer.encode_array(texts, threads=2)
        tokenize_s = time.perf_counter() - start
        start = time.perf_counter()
        embedder.embed_tokens(tokens)
        encode_s = time.perf_counter() - start
        del tokens

        start = time.perf_counter()
        meta = retrieval.build_index(embedder, docs, work / "index")
        build_s = time.perf_counter() - start
        size = sum(f.stat().st_size for f in (work / "index").iterdir())

        start = time.perf_counter()
        saved = retrieval.load_index(work / "index")
        load_s = time.perf_counter() - start
        rng = np.random.default_rng(0)
        queries = [texts[int(i)][:1000] for i in rng.choice(len(texts), args.queries, replace=False)]
        retrieval.search(saved, embedder, queries[:5], args.k)  # warm-up
        latency, vector_latency, well_formed = [], [], True
        for q in queries:
            start = time.perf_counter()
            hits = retrieval.search(saved, embedder, [q], args.k)[0]
            latency.append(time.perf_counter() - start)
            well_formed &= len(hits) == args.k and bool((np.diff(hits["score"].to_numpy()) <= 1e-6).all())
        encoded = embedder.embed_texts(queries)
        for v in encoded:
            start = time.perf_counter()
            saved.index.search(v[None], args.k)
            vector_latency.append(time.perf_counter() - start)
        backend = "faiss" if saved.index._faiss_index() is not None else "numpy"

    ms = np.array(latency) * 1000
    vms = np.array(vector_latency) * 1000
    results = {
        "command": " ".join(["python", "bench/bench_retrieval.py", *(argv if argv is not None else sys.argv[1:])]),
        "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
                    "torch_threads": args.threads, "load_avg_at_end": [round(x, 2) for x in os.getloadavg()],
                    "numpy": np.__version__, "torch": torch.__version__},
        "model": {"path": str(args.model) if trained else "untrained bag (no pipeline run)", "kind": embedder.kind,
                  "dim": meta["dim"], "max_len": embedder.max_len},
        "documents": args.docs,
        "build": {"seconds": build_s, "docs_per_second": args.docs / build_s,
                  "tokenize_docs_per_second": args.docs / tokenize_s, "encode_docs_per_second": args.docs / encode_s,
                  "index_mib": size / 2 ** 20, "load_seconds": load_s},
        "search": {"queries": args.queries, "k": args.k, "backend": backend, "query_chars": "first 1000 of a document",
                   "p50_ms": float(np.percentile(ms, 50)), "p99_ms": float(np.percentile(ms, 99)),
                   "mean_ms": float(ms.mean()),
                   "vector_only_p50_ms": float(np.percentile(vms, 50)),
                   "vector_only_p99_ms": float(np.percentile(vms, 99)),
                   "results_well_formed": well_formed},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(results, indent=2))
    return results


if __name__ == "__main__":
    main()
