"""A table of documents (ids and texts) from a user's file, and the snippets an index shows."""
from __future__ import annotations

import re
from pathlib import Path

import pandas as pd

from reprotext.errors import DataError

SNIPPET_CHARS = 200

_READERS = {".csv": pd.read_csv, ".tsv": lambda p: pd.read_csv(p, sep="\t"), ".parquet": pd.read_parquet,
            ".jsonl": lambda p: pd.read_json(p, lines=True)}


def read_documents(path: str | Path, text_column: str = "text", id_column: str | None = None) -> pd.DataFrame:
    """A table's ids (``id_column``, else the row number) and texts, as columns ``id`` (str) and ``text``."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: input file not found")
    if path.suffix not in _READERS:
        raise DataError(f"{path}: unknown format {path.suffix!r}; use .csv, .tsv, .parquet or .jsonl")
    frame = _READERS[path.suffix](path)
    for col, flag in ((text_column, "--text-column"), (id_column, "--id-column")):
        if col is not None and col not in frame.columns:
            raise DataError(f"{path}: column {col!r} not found; available: {', '.join(map(str, frame.columns))}; "
                            f"pass {flag}")
    ids = frame[id_column].astype(str) if id_column else pd.Series(range(len(frame))).astype(str)
    if ids.duplicated().any():
        raise DataError(f"{path}: id {ids[ids.duplicated()].iloc[0]!r} appears more than once in column "
                        f"{id_column!r}; ids must be unique")
    return pd.DataFrame({"id": ids.to_numpy(), "text": frame[text_column].fillna("").astype(str).to_numpy()})


def snippet(text: str, chars: int = SNIPPET_CHARS) -> str:
    text = re.sub(r"\s+", " ", text).strip()
    return text if len(text) <= chars else text[: chars - 1].rstrip() + "…"


