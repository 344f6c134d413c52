"""The `reprotext` command."""
from __future__ import annotations

import argparse
import json
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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="reprotext", description="A reproducible NLP training pipeline.")
    sub = parser.add_subparsers(dest="command", required=True)
    s = sub.add_parser("summary", help="print the test metrics of the last pipeline run")
    s.add_argument("--metrics", default="metrics/evaluate.json")
    s.set_defaults(func=_summary)
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except ReprotextError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
