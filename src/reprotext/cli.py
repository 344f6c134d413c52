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
    for role, m in metrics.items():
        t = m["test"]
        print(f"  {role:<7} {m['model']:<9} test accuracy {t['accuracy']:.4f}   macro-F1 {t['macro_f1']:.4f}"
              f"   ({m['test_docs']} test documents)")
        r = m.get("retrieval", {})
        if r.get("best_learned"):
            best, ms = r["best_learned"], r["methods"]
            print(f"  {'':<7} {'':<9} query-by-example mAP@100 {ms[best]['map_at_100']:.4f} ({best}) vs TF-IDF cosine "
                  f"{ms['tfidf_cosine']['map_at_100']:.4f}, BM25 {ms['bm25']['map_at_100']:.4f}")


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
    with tqdm(total=len(texts), desc="predict", unit="doc") as bar:
        for start in range(0, len(texts), args.batch_size):
            chunk = texts[start:start + args.batch_size]
            parts.append(model.predict(pd.DataFrame({"text": chunk})))
            bar.update(len(chunk))
    preds = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame({"label": []})
    out = pd.concat([frame.reset_index(drop=True), preds], axis=1)
    with atomic_file(args.output) as tmp:
        out.to_csv(tmp, index=False)
    print(f"wrote {len(out)} predictions to {args.output}")


def _index(args: argparse.Namespace) -> None:
    from reprotext import retrieval

    documents = retrieval.read_documents(args.input, args.text_column, args.id_column)
    embedder = retrieval.load_embedder(args.model, args.tokenizer, args.batch_size)
    meta = retrieval.build_index(embedder, documents, args.output, center=not args.no_center)
    print(f"indexed {meta['documents']} documents ({meta['dim']}-dim {meta['model']['kind']} vectors of "
          f"{args.model}) into {args.output} in {meta['seconds']:.1f}s")


def _search(args: argparse.Namespace) -> None:
    from reprotext import retrieval

    saved = retrieval.load_index(args.index)
    embedder = retrieval.load_embedder(args.model or saved.model["path"], args.tokenizer or saved.meta["tokenizer"],
                                       max_len=saved.model.get("max_len", 1024))
    for query, hits in zip(args.query, retrieval.search(saved, embedder, args.query, args.k)):
        if len(args.query) > 1:
            print(f"query: {query}")
        for r in hits.itertuples():
            print(f"{r.rank:>3}  {r.id}  {r.score:.4f}  {r.snippet}")


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
    ix = sub.add_parser("index", help="embed the documents of a file with a model into a searchable index")
    ix.add_argument("--model", required=True, help="models/train, models/finetune, models/finetune/dual_encoder "
                                                   "or models/embeddings (mean-pooled piece vectors)")
    ix.add_argument("--input", required=True, help="a .csv/.tsv/.parquet/.jsonl file with a text column")
    ix.add_argument("--output", required=True, help="the index directory to write")
    ix.add_argument("--tokenizer", default="models/tokenizer", help="the model's tokenizer (default: %(default)s)")
    ix.add_argument("--text-column", default="text")
    ix.add_argument("--id-column", help="document ids (default: the row number)")
    ix.add_argument("--batch-size", type=int, default=256)
    ix.add_argument("--no-center", action="store_true", help="do not centre the vectors on the collection's mean")
    ix.set_defaults(func=_index)
    se = sub.add_parser("search", help="the documents of an index nearest to query texts (cosine)")
    se.add_argument("--index", required=True, help="a directory written by `reprotext index`")
    se.add_argument("-k", type=int, default=10, help="results per query (default: %(default)s)")
    se.add_argument("--model", help="the model to embed queries with (default: the one that built the index)")
    se.add_argument("--tokenizer", help="its tokenizer (default: the one the index records)")
    se.add_argument("query", nargs="+", help="query text(s)")
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
