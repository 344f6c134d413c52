"""A retrieval test collection in the BEIR layout (Thakur et al. 2021), read from a user's folder.

::

    folder/
      corpus.jsonl     one document a line: {"_id": str, "title": str (optional), "text": str}
      queries.jsonl    one query a line: {"_id": str, "text": str} (other keys, e.g. metadata, are ignored)
      qrels/
        train.tsv      query-id <TAB> corpus-id <TAB> score, after a header line; score > 0 is relevant
        dev.tsv        optional
        test.tsv

``corpus.jsonl`` and ``queries.jsonl`` may be compressed (``.gz``, ``.xz``, ``.bz2``). Every problem is one
line naming the file, the line and what would be right: a collection that loads is consistent (unique ids,
every judged query and document present).
"""
from __future__ import annotations

import bz2
import gzip
import json
import lzma
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from reprotext.errors import DataError

SPLITS = ("train", "dev", "test")
QRELS_HEADER = ("query-id", "corpus-id", "score")
_OPENERS = {"": open, ".gz": gzip.open, ".xz": lzma.open, ".bz2": bz2.open}


@dataclass
class Collection:
    """The documents, the queries and the relevance judgments of each split."""

    corpus: pd.DataFrame  # id, title, text (str)
    queries: pd.DataFrame  # id, text (str)
    qrels: dict[str, pd.DataFrame]  # split -> query_id, doc_id (str), score (int)

    def doc_texts(self) -> list[str]:
        """Title and text of every document, the title first (the text a model reads)."""
        return corpus_texts(self.corpus)

    def split_queries(self, split: str) -> pd.DataFrame:
        """The queries judged in ``split`` (id, text), in the order of queries.jsonl."""
        if split not in self.qrels:
            raise DataError(f"no qrels for split {split!r}; have {', '.join(self.qrels) or 'none'}")
        return self.queries[self.queries["id"].isin(set(self.qrels[split]["query_id"]))].reset_index(drop=True)

    def judgments(self, split: str) -> dict[str, dict[str, int]]:
        """{query id: {document id: relevance}} of ``split`` (the qrels an IR evaluation library reads)."""
        out: dict[str, dict[str, int]] = {}
        for q, d, s in self.qrels[split][["query_id", "doc_id", "score"]].itertuples(index=False):
            out.setdefault(q, {})[d] = int(s)
        return out


def _find(folder: Path, name: str) -> Path:
    for suffix in _OPENERS:
        path = folder / f"{name}{suffix}"
        if path.is_file():
            return path
    raise DataError(f"{folder / name}: not found (also tried .gz, .xz, .bz2); a BEIR folder holds corpus.jsonl, "
                    "queries.jsonl and qrels/{train,test}.tsv")


def _records(path: Path, required: tuple[str, ...]) -> Iterator[tuple[int, dict]]:
    opener = _OPENERS[path.suffix if path.suffix in _OPENERS else ""]
    try:
        with opener(path, "rt", encoding="utf-8") as f:
            for n, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    rec = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise DataError(f"{path}:{n}: not a JSON object ({exc.msg}); write one JSON object per line") \
                        from exc
                if not isinstance(rec, dict):
                    raise DataError(f"{path}:{n}: a JSON {type(rec).__name__}, not an object; write one object "
                                    f"with {', '.join(required)} per line")
                missing = [k for k in required if k not in rec]
                if missing:
                    raise DataError(f"{path}:{n}: no {missing[0]!r} key (keys: {', '.join(rec) or 'none'}); every "
                                    f"line needs {', '.join(required)}")
                yield n, rec
    except (OSError, EOFError, lzma.LZMAError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: unreadable ({exc.__class__.__name__}: {exc}); give UTF-8 JSON lines, plain or "
                        "compressed (.gz, .xz, .bz2)") from exc


def _table(path: Path, keys: tuple[str, ...], what: str) -> pd.DataFrame:
    rows: dict[str, list[str]] = {k: [] for k in ("id", *keys)}
    seen: dict[str, int] = {}
    for n, rec in _records(path, ("_id", "text")):
        doc_id = str(rec["_id"])
        if not doc_id.strip():
            raise DataError(f"{path}:{n}: empty '_id'; every {what} needs an id")
        if doc_id in seen:
            raise DataError(f"{path}:{n}: '_id' {doc_id!r} already on line {seen[doc_id]}; ids must be unique")
        seen[doc_id] = n
        rows["id"].append(doc_id)
        for k in keys:
            value = rec.get(k) or ""
            if not isinstance(value, str):
                raise DataError(f"{path}:{n}: {k!r} is a {type(value).__name__}, not a string")
            rows[k].append(value)
    if not rows["id"]:
        raise DataError(f"{path}: no {what}s; write one JSON object per line")
    return pd.DataFrame(rows)


def _qrels(path: Path, query_ids: set[str], doc_ids: set[str]) -> pd.DataFrame:
    try:
        frame = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False, quoting=3)
    except (OSError, ValueError, pd.errors.ParserError) as exc:
        raise DataError(f"{path}: not a tab-separated file ({exc.__class__.__name__}); write "
                        "'query-id<TAB>corpus-id<TAB>score' lines after that header") from exc
    if tuple(frame.columns) != QRELS_HEADER:
        got, want = "<TAB>".join(map(str, frame.columns)), "<TAB>".join(QRELS_HEADER)
        raise DataError(f"{path}: header {got!r} is not {want!r}; the first line must name the three columns")
    for col, ids, where in (("query-id", query_ids, "queries.jsonl"), ("corpus-id", doc_ids, "corpus.jsonl")):
        unknown = ~frame[col].isin(ids)
        if unknown.any():
            i = int(np.flatnonzero(unknown.to_numpy())[0])
            raise DataError(f"{path}:{i + 2}: {col} {frame[col].iloc[i]!r} is not in {where} "
                            f"({int(unknown.sum())} such lines); judge only queries and documents of the collection")
    scores = pd.to_numeric(frame["score"], errors="coerce")
    bad = scores.isna() | (scores != scores.round())
    if bad.any():
        i = int(np.flatnonzero(bad.to_numpy())[0])
        raise DataError(f"{path}:{i + 2}: score {frame['score'].iloc[i]!r} is not an integer; relevance is 0, 1, 2, ...")
    dup = frame.duplicated(["query-id", "corpus-id"])
    if dup.any():
        i = int(np.flatnonzero(dup.to_numpy())[0])
        raise DataError(f"{path}:{i + 2}: ({frame['query-id'].iloc[i]}, {frame['corpus-id'].iloc[i]}) is judged "
                        "twice; keep one line per pair")
    return pd.DataFrame({"query_id": frame["query-id"], "doc_id": frame["corpus-id"], "score": scores.astype(int)})


def load_corpus(folder: str | Path) -> pd.DataFrame:
    """Only the documents of a BEIR folder (id, title, text), e.g. to index them."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"{folder}: not a folder; give a BEIR folder with corpus.jsonl")
    return _table(_find(folder, "corpus.jsonl"), ("title", "text"), "document")


def corpus_texts(corpus: pd.DataFrame) -> list[str]:
    """Title and text of every document, the title first (the text a model reads)."""
    return [f"{t} {x}" if t else x for t, x in zip(corpus["title"], corpus["text"])]


def load_beir(folder: str | Path, splits: tuple[str, ...] = SPLITS) -> Collection:
    """Read and check a BEIR folder; the qrels of the ``splits`` that exist (test is required)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"{folder}: not a folder; give a BEIR folder with corpus.jsonl, queries.jsonl and qrels/")
    corpus = _table(_find(folder, "corpus.jsonl"), ("title", "text"), "document")
    queries = _table(_find(folder, "queries.jsonl"), ("text",), "query")
    if not (folder / "qrels").is_dir():
        raise DataError(f"{folder / 'qrels'}: not found; put the relevance judgments in qrels/test.tsv "
                        "(and qrels/train.tsv for training)")
    doc_ids, query_ids = set(corpus["id"]), set(queries["id"])
    qrels = {s: _qrels(folder / "qrels" / f"{s}.tsv", query_ids, doc_ids) for s in splits
             if (folder / "qrels" / f"{s}.tsv").is_file()}
    if "test" in splits and "test" not in qrels:
        raise DataError(f"{folder / 'qrels' / 'test.tsv'}: not found; the test judgments are what retrieval is "
                        "measured on")
    for a in qrels:
        for b in qrels:
            if a < b:
                shared = set(qrels[a]["query_id"]) & set(qrels[b]["query_id"])
                if shared:
                    raise DataError(f"{folder / 'qrels'}: query {sorted(shared)[0]!r} is judged in both {a}.tsv and "
                                    f"{b}.tsv ({len(shared)} such queries); a query belongs to one split")
    return Collection(corpus, queries, qrels)


def carve_dev(collection: Collection, fraction: float, seed: int) -> Collection:
    """Hold out ``fraction`` of the training queries (seeded) as the dev split, unless qrels/dev.tsv exists."""
    if "dev" in collection.qrels or "train" not in collection.qrels:
        return collection
    if not 0.0 < fraction < 1.0:
        raise DataError(f"dev fraction {fraction} must be in (0, 1) to carve dev queries out of qrels/train.tsv")
    train = collection.qrels["train"]
    ids = np.array(sorted(set(train["query_id"])))
    n_dev = max(1, int(round(fraction * len(ids))))
    if n_dev >= len(ids):
        raise DataError(f"qrels/train.tsv judges {len(ids)} queries: too few to hold out {fraction:.0%} as dev")
    dev = set(np.random.default_rng(seed).choice(ids, n_dev, replace=False).tolist())
    is_dev = train["query_id"].isin(dev)
    qrels = {**collection.qrels, "train": train[~is_dev].reset_index(drop=True),
             "dev": train[is_dev].reset_index(drop=True)}
    return Collection(collection.corpus, collection.queries, qrels)
