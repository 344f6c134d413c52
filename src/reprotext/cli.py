"""The `reprotext` command."""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from reprotext.errors import ReprotextError


def _summary(args: argparse.Namespace) -> None:
    path = Path(args.metrics)
    if not path.is_file():
        raise ReprotextError(f"{path}: no evaluation metrics yet; run `make run` (or `dvc repro`) first")
    metrics = json.loads(path.read_text())
    print(f"reprotext results ({path}):")
    multitask = metrics.pop("multitask", None)  # the multitask stage's model, scored per task
    for role, m in metrics.items():
        t = m["test"]
        print(f"  {role:<7} {m['model']:<9} test accuracy {t['accuracy']:.4f}   macro-F1 {t['macro_f1']:.4f}"
              f"   ({m['test_docs']} test documents)")
        r = m.get("retrieval", {})
        if r.get("best_learned"):
            best, ms = r["best_learned"], r["methods"]
            print(f"  {'':<7} {'':<9} query-by-example mAP@100 {ms[best]['map_at_100']:.4f} ({best}) vs TF-IDF cosine "
                  f"{ms['tfidf_cosine']['map_at_100']:.4f}, BM25 {ms['bm25']['map_at_100']:.4f}")
    for task, m in (multitask or {}).get("tasks", {}).items():
        t = m["test"]
        print(f"  {task:<7} {'multitask':<9} test accuracy {t['accuracy']:.4f}   macro-F1 {t['macro_f1']:.4f}"
              f"   ({m['test_docs']} test documents)")


def _report(args: argparse.Namespace) -> None:
    from reprotext import gate

    cwd = Path.cwd()
    if not gate.baseline_exists(args.baseline, cwd):
        text = f"No baseline: revision `{args.baseline}` does not exist yet; nothing to compare.\n"
    else:
        text = gate.render_report(gate.metric_changes(args.baseline, cwd), gate.param_changes(args.baseline, cwd),
                                  args.baseline)
    if args.output:
        Path(args.output).write_text(text, encoding="utf-8")
    print(text, end="")


def _gate(args: argparse.Namespace) -> None:
    from reprotext import gate

    cwd = Path.cwd()
    if not gate.baseline_exists(args.baseline, cwd):
        print(f"gate: no baseline yet (revision `{args.baseline}` does not exist); passing")
        return
    changes = gate.metric_changes(args.baseline, cwd)
    if all(c.old is None for c in changes):
        print(f"gate: the baseline `{args.baseline}` has no metrics yet; passing")
        return
    verdicts = gate.judge(changes, args.metric, args.tolerance)
    print(gate.render_verdicts(verdicts), end="")
    bad = [v for v in verdicts if v.regressed]
    if bad:
        print(f"gate: FAILED: {len(bad)} metric(s) regressed beyond {args.tolerance:g} against `{args.baseline}`",
              file=sys.stderr)
        sys.exit(1)
    print(f"gate: passed: no regression of {args.metric} beyond {args.tolerance:g} against `{args.baseline}`")


def _predict(args: argparse.Namespace) -> None:
    import pandas as pd
    from tqdm.auto import tqdm

    from reprotext import export
    from reprotext.io import atomic_file

    path = Path(args.input)
    readers = {".csv": pd.read_csv, ".tsv": lambda p: pd.read_csv(p, sep="\t"), ".parquet": pd.read_parquet,
               ".jsonl": lambda p: pd.read_json(p, lines=True)}
    if not path.is_file():
        raise ReprotextError(f"{path}: input file not found")
    if path.suffix not in readers:
        raise ReprotextError(f"{path}: unknown format {path.suffix!r}; use .csv, .tsv, .parquet or .jsonl")
    frame = readers[path.suffix](path)
    if args.text_column not in frame.columns:
        raise ReprotextError(f"{path}: column {args.text_column!r} not found; available: {', '.join(map(str, frame.columns))}; "
                             "pass --text-column")
    texts = frame[args.text_column].fillna("").astype(str).tolist()
    model = export.load(args.model)
    parts = []
    with tqdm(total=len(texts), desc="predict", unit="doc", disable=None) as bar:  # None: no bar in a log
        for start in range(0, len(texts), args.batch_size):
            chunk = texts[start:start + args.batch_size]
            parts.append(model.predict(pd.DataFrame({"text": chunk})))
            bar.update(len(chunk))
    preds = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame({"label": []})
    out = pd.concat([frame.reset_index(drop=True), preds], axis=1)
    with atomic_file(args.output) as tmp:
        out.to_csv(tmp, index=False)
    print(f"wrote {len(out)} predictions to {args.output}")


def _documents(args: argparse.Namespace):
    import pandas as pd

    from reprotext.retrieval import beir, read_documents

    if Path(args.input).is_dir():  # a BEIR folder: corpus.jsonl's ids and title + text
        corpus = beir.load_corpus(args.input)
        return pd.DataFrame({"id": corpus["id"], "text": beir.corpus_texts(corpus)})
    return read_documents(args.input, args.text_column, args.id_column)


def _index(args: argparse.Namespace) -> None:
    from reprotext.retrieval import load_embedder, search_index

    documents = _documents(args)
    embedder = None
    if args.method != "bm25":
        if args.model is None:
            raise ReprotextError(f"--method {args.method} needs --model (e.g. models/retrieval/dssm)")
        embedder = load_embedder(args.model, args.tokenizer, args.batch_size)
        if args.no_center:
            embedder.center = False
    fusion = None
    if args.method == "hybrid":
        chosen = {}
        if args.fusion_from:
            path = Path(args.fusion_from)
            if not path.is_file():
                raise ReprotextError(f"--fusion-from {path}: not found; run the retrieval pipeline "
                                     "(`make retrieval`) or pass --fusion and --weight")
            chosen = json.loads(path.read_text()).get("fusion", {})
        fusion = search_index.Fusion(method=args.fusion or chosen.get("method", "convex"),
                                     weight=args.weight if args.weight is not None else chosen.get("weight", 0.5),
                                     depth=chosen.get("depth", 1000), rrf_k=chosen.get("rrf_k", 60))
    bm25 = {"k1": args.k1, "b": args.b, "stopwords": None if args.stopwords == "none" else args.stopwords,
            "stemmer": None if args.stemmer == "none" else args.stemmer}
    meta = search_index.build(args.output, documents, args.method, embedder, bm25, fusion)
    what = f"{meta['dim']}-dim {meta['model']['kind']} vectors of {args.model}" if embedder else "BM25"
    if fusion:
        what += f" + BM25, {fusion.method} fusion at dense weight {fusion.weight:g}"
    print(f"indexed {meta['documents']} documents ({args.method}: {what}) into {args.output} in "
          f"{meta['seconds']:.1f}s")


def _search(args: argparse.Namespace) -> None:
    import time

    import numpy as np

    from reprotext.retrieval import search_index

    start = time.perf_counter()
    searcher = search_index.Searcher(args.index, args.model, args.tokenizer)
    load_seconds = time.perf_counter() - start
    if args.queries:
        if args.query:
            raise ReprotextError("give queries either as arguments or with --queries, not both")
        # One query a line, answered as it arrives: a long-lived process loads the index once.
        stream = sys.stdin if args.queries == "-" else open(args.queries, encoding="utf-8")
        queries = (line.rstrip("\n") for line in stream)
    elif args.query:
        queries = iter(args.query)
    else:
        raise ReprotextError("no query: give query texts, or --queries FILE (one a line; - for stdin)")
    latencies = []
    many = args.queries or len(args.query) > 1
    for query in queries:
        if not query.strip():
            continue
        t = time.perf_counter()
        hits = searcher.search([query], args.k, args.method)[0]
        latencies.append(time.perf_counter() - t)
        if many:
            print(f"query: {query}")
        for r in hits.itertuples():
            print(f"{r.rank:>3}  {r.id}  {r.score:.4f}  {r.snippet}")
        sys.stdout.flush()
    if args.timing and latencies:
        ms = np.array(latencies) * 1000
        print(f"timing: loaded in {load_seconds:.2f}s; {len(ms)} queries ({args.method or searcher.method}), "
              f"latency median {np.median(ms):.1f} ms, p95 {np.percentile(ms, 95):.1f} ms", file=sys.stderr)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="reprotext", description="A reproducible NLP training pipeline.")
    sub = parser.add_subparsers(dest="command", required=True)
    s = sub.add_parser("summary", help="print the test metrics of the last pipeline run")
    s.add_argument("--metrics", default="metrics/evaluate.json")
    s.set_defaults(func=_summary)
    r = sub.add_parser("report", help="Markdown table of metric and param changes against a baseline revision")
    r.add_argument("--baseline", required=True, help="git revision to compare with (e.g. origin/main)")
    r.add_argument("--output", help="also write the report to this file")
    r.set_defaults(func=_report)
    g = sub.add_parser("gate", help="exit 1 when a metric regressed against a baseline revision")
    g.add_argument("--baseline", required=True, help="git revision to compare with (e.g. origin/main)")
    g.add_argument("--metric", default="test/macro_f1", help="metric key or key suffix (default: %(default)s)")
    g.add_argument("--tolerance", type=float, default=0.005, help="allowed drop (default: %(default)s)")
    g.set_defaults(func=_gate)
    pr = sub.add_parser("predict", help="label the texts of a file with an exported model")
    pr.add_argument("--model", required=True, help="models/export/source, or a URI like models:/reprotext@champion")
    pr.add_argument("--input", required=True, help="a .csv/.tsv/.parquet/.jsonl file with a text column")
    pr.add_argument("--output", required=True, help="CSV to write: the input columns + label + prob_<label>")
    pr.add_argument("--text-column", default="text")
    pr.add_argument("--batch-size", type=int, default=1024)
    pr.set_defaults(func=_predict)
    ix = sub.add_parser("index", help="index the documents of a file or a BEIR folder: BM25, dense or hybrid")
    ix.add_argument("--method", choices=("bm25", "dense", "hybrid"), default="dense",
                    help="bm25, dense (a model's vectors, cosine) or hybrid (both, fused) (default: %(default)s)")
    ix.add_argument("--model", help="dense and hybrid: models/retrieval/dssm, models/train, models/finetune, "
                                    "models/finetune/dual_encoder or models/embeddings (mean-pooled piece vectors)")
    ix.add_argument("--input", required=True, help="a .csv/.tsv/.parquet/.jsonl file with a text column, or a BEIR "
                                                   "folder (its corpus.jsonl: _id, title, text)")
    ix.add_argument("--output", required=True, help="the index directory to write")
    ix.add_argument("--tokenizer", default="models/tokenizer", help="the model's tokenizer (default: %(default)s)")
    ix.add_argument("--text-column", default="text")
    ix.add_argument("--id-column", help="document ids (default: the row number)")
    ix.add_argument("--batch-size", type=int, default=256)
    ix.add_argument("--no-center", action="store_true", help="do not centre the vectors on the collection's mean")
    ix.add_argument("--k1", type=float, default=1.5, help="BM25 k1 (default: %(default)s)")
    ix.add_argument("--b", type=float, default=0.75, help="BM25 b (default: %(default)s)")
    ix.add_argument("--stopwords", default="english", choices=("english", "none"))
    ix.add_argument("--stemmer", default="english", help="a Snowball language, or none (default: %(default)s)")
    ix.add_argument("--fusion", choices=("rrf", "convex"), help="hybrid: the fusion (default: --fusion-from's or convex)")
    ix.add_argument("--weight", type=float, help="hybrid: the dense side's weight in [0, 1] (default: --fusion-from's "
                                                 "or 0.5)")
    ix.add_argument("--fusion-from", help="hybrid: take the fusion chosen on dev from this file "
                                          "(metrics/retrieval/hybrid.json)")
    ix.set_defaults(func=_index)
    se = sub.add_parser("search", help="the documents of an index best for query texts")
    se.add_argument("--index", required=True, help="a directory written by `reprotext index`")
    se.add_argument("-k", type=int, default=10, help="results per query (default: %(default)s)")
    se.add_argument("--method", choices=("bm25", "dense", "hybrid"),
                    help="search a hybrid index with one side only (default: the index's method)")
    se.add_argument("--model", help="the model to embed queries with (default: the one that built the index)")
    se.add_argument("--tokenizer", help="its tokenizer (default: the one the index records)")
    se.add_argument("--queries", help="a file of queries, one a line, or - to read them from stdin as they come "
                                      "(the index stays loaded)")
    se.add_argument("--timing", action="store_true", help="print load time and per-query latency to stderr")
    se.add_argument("query", nargs="*", help="query text(s)")
    se.set_defaults(func=_search)
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    if args.command == "predict" and not os.environ.get("MLFLOW_TRACKING_URI"):
        # models:/ URIs resolve against the project's own registry by default.
        from reprotext.tracking import tracking_uri

        os.environ["MLFLOW_TRACKING_URI"] = tracking_uri()
    try:
        args.func(args)
    except ReprotextError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
