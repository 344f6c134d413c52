"""Benchmark pyfunc prediction (the exported MLflow model) against the raw forward, on the same texts.

A small bag classifier and tokenizer are built from the builtin 20 Newsgroups
text (the weights are untrained: throughput does not depend on them), saved as
the train stage saves them, exported with ``reprotext.export.save`` and loaded
back with ``mlflow.pyfunc.load_model``. Three ways of predicting the same
``--docs`` texts, in batches of ``--batch-size``, alternated, best of ``--repeats``:

- raw forward: ``model(ids)`` on batches tokenized and collated beforehand (the floor);
- ``reprotext.evaluation.predict_proba``: tokenization + forward (what evaluate runs);
- pyfunc: ``loaded.predict(DataFrame({"text": texts}))``: normalisation, tokenization,
  forward and the output frame (what a served model runs).

The ratios are throughputs (docs/s) relative to the raw forward and to
predict_proba; the target is pyfunc >= 0.8x predict_proba (the wrapper's own cost).

    .venv/bin/python bench/bench_predict.py [--docs 2000] [--batch-size 128] [--repeats 3] [--out bench/results/predict.json]
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from reprotext import export
from reprotext.config import TokenizeConfig
from reprotext.data.sources import read_builtin
from reprotext.evaluation import predict_proba
from reprotext.models import Classifier, ModelConfig, load_model, save_model
from reprotext.tokenizer import train_tokenizer
from reprotext.training import collate
from timing import best_of  # bench/ is on sys.path when a bench script runs

ROOT = Path(__file__).resolve().parents[1]
MIN_RATIO = 0.8



def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--docs", type=int, default=2000)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--vocab-size", type=int, default=8000)
    p.add_argument("--max-len", type=int, default=1024)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--out", type=Path, default=ROOT / "bench/results/predict.json")
    args = p.parse_args(argv)
    torch.set_num_threads(min(2, os.cpu_count() or 1))
    news = read_builtin("20newsgroups")
    texts = news["text"].tolist()[: args.docs]
    labels = sorted(news["label"].astype(str).unique())
    with tempfile.TemporaryDirectory(prefix="bench-predict-") as tmp:
        work = Path(tmp)
        tok = train_tokenizer(texts, TokenizeConfig(vocab_size=args.vocab_size), work / "tokenizer")
        torch.manual_seed(0)
        config = ModelConfig(model="bag", vocab_size=tok.vocab_size, embedding_dim=100, labels=tuple(labels),
                             hidden_dim=0, dropout=0.2, max_len=args.max_len, tokenizer_sha256=tok.sha256,
                             encoder={"pooling": "mean"})
        save_model(Classifier(config, None), work / "model", {"bench": "untrained"})
        model, _ = load_model(work / "model", tok.sha256)
        model.eval()
        export.save(work / "model", Path(tok.path), labels, texts[:2], work / "export")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            loaded = export.load(str(work / "export"))
        frame = pd.DataFrame({"text": texts})
        ids = tok.encode(texts, threads=2)
        batches = [collate([(np.asarray(x[: args.max_len]), 0) for x in ids[s: s + args.batch_size]])[0]
                   for s in range(0, len(ids), args.batch_size)]

        @torch.no_grad()
        def raw() -> None:
            for b in batches:
                torch.softmax(model(b), dim=-1)

        def ours() -> None:
            predict_proba(model, tok, texts, args.batch_size)

        def pyfunc() -> None:
            loaded.predict(frame, params={"batch_size": args.batch_size})

        # The three give the same classes on the same texts (a benchmark of a wrong path is worthless).
        same = bool((loaded.predict(frame)["label"].to_numpy()
                     == np.asarray(labels)[predict_proba(model, tok, texts, args.batch_size).argmax(1)]).all())
        raw_s, ours_s, pyfunc_s = best_of(args.repeats, raw, ours, pyfunc)
    n = len(texts)
    results = {
        "command": " ".join(["python", "bench/bench_predict.py", *(argv if argv is not None else sys.argv[1:])]),
        "docs": n, "batch_size": args.batch_size, "repeats": args.repeats, "model": "bag (untrained weights)",
        "tokens": int(sum(min(len(x), args.max_len) for x in ids)),
        "raw_forward_docs_per_second": n / raw_s, "predict_proba_docs_per_second": n / ours_s,
        "pyfunc_docs_per_second": n / pyfunc_s,
        "pyfunc_over_raw_forward": raw_s / pyfunc_s, "pyfunc_over_predict_proba": ours_s / pyfunc_s,
        "min_ratio": MIN_RATIO, "same_predictions": same,
        "ok": same and ours_s / pyfunc_s >= MIN_RATIO,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(results, indent=2))
    return results


if __name__ == "__main__":
    sys.exit(0 if main()["ok"] else 1)
