"""Parquet frames that record how they were made, in the file's own key-value metadata."""
from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from reprotext.errors import ArtifactError
from reprotext.io import FORMAT_VERSION, check_format

META_KEY = b"reprotext"
# Read a Parquet column chunk page by page through a 1 MB buffer: by default pyarrow loads a whole row
# group's column chunk first, and a file written in one go is one row group (736 MB at 50x 20NG).
PARQUET_STREAM = {"pre_buffer": False, "buffer_size": 1 << 20}


def write_frame(frame: pd.DataFrame, path: str | Path, meta: dict[str, Any]) -> None:
    """Write ``frame`` (no index) to ``path`` with ``meta`` as JSON under the ``reprotext`` key.

    Keys are sorted and nothing time-dependent is stored, so the same frame and
    meta give a byte-identical file.
    """
    with FrameWriter(path, meta) as writer:
        writer.write(frame)


class FrameWriter:
    """A Parquet file written frame by frame (one row group each), with ``meta`` as in :func:`write_frame`.

    The schema is the first non-empty frame's; later frames are cast to it. Every frame must have the
    same columns. The file is complete once the writer is closed (``with`` exits without an error).
    """

    def __init__(self, path: str | Path, meta: dict[str, Any]):
        self.path = Path(path)
        record = json.dumps({"format_version": FORMAT_VERSION, **meta}, sort_keys=True, ensure_ascii=False)
        self.record = record.encode()
        self._writer: pq.ParquetWriter | None = None
        self._empty: pa.Table | None = None
        self.rows = 0

    def __enter__(self) -> FrameWriter:
        return self

    def _table(self, frame: pd.DataFrame) -> pa.Table:
        table = pa.Table.from_pandas(frame, preserve_index=False)
        return table.replace_schema_metadata({**(table.schema.metadata or {}), META_KEY: self.record})

    def write(self, frame: pd.DataFrame) -> None:
        """Append ``frame``'s rows (its index is dropped)."""
        table = self._table(frame)
        if self._writer is None:
            if len(frame) == 0:
                if self._empty is None:
                    self._empty = table
                return
            self._writer = pq.ParquetWriter(self.path, table.schema)
        elif len(frame) == 0:
            return
        elif not table.schema.equals(self._writer.schema, check_metadata=False):
            table = table.cast(self._writer.schema)
        self._writer.write_table(table)
        self.rows += len(frame)

    def __exit__(self, exc_type, exc, tb) -> None:
        if self._writer is not None:
            self._writer.close()
        elif exc_type is None:
            if self._empty is None:
                raise ValueError(f"{self.path}: no frame written, so no schema to write")
            pq.write_table(self._empty, self.path)


def read_frame(path: str | Path, columns: list[str] | None = None) -> pd.DataFrame:
    """A stage's Parquet output; a truncated or corrupted file is one clear error, not a traceback."""
    try:
        return pd.read_parquet(path, columns=columns)
    except (pa.ArrowException, OSError, ValueError, KeyError) as exc:
        raise _unreadable(path, exc) from exc


def iter_frames(path: str | Path, batch_rows: int, columns: list[str] | None = None) -> Iterator[pd.DataFrame]:
    """A stage's Parquet output ``batch_rows`` rows at a time, each indexed from 0; errors as :func:`read_frame`."""
    try:
        with pq.ParquetFile(path, **PARQUET_STREAM) as pf:
            for batch in pf.iter_batches(batch_size=batch_rows, columns=columns):
                yield batch.to_pandas()
    except (pa.ArrowException, OSError, ValueError, KeyError) as exc:
        raise _unreadable(path, exc) from exc


def read_schema(path: str | Path) -> pa.Schema:
    """The Arrow schema of a stage's Parquet output; errors as :func:`read_frame`."""
    try:
        return pq.read_schema(path)
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise _unreadable(path, exc) from exc


def _unreadable(path: str | Path, exc: Exception) -> ArtifactError:
    reason = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else exc.__class__.__name__
    return ArtifactError(f"{path}: not a readable Parquet file ({reason}); "
                         "rerun the stage that wrote it (`dvc repro --force <stage>`)")


def read_meta(path: str | Path) -> dict[str, Any]:
    """The ``reprotext`` metadata of a Parquet file; empty when it has none (a file made elsewhere)."""
    try:
        schema = pq.read_schema(path)
    except (pa.ArrowException, OSError) as exc:
        raise ArtifactError(f"{path}: not a readable Parquet file ({exc}); "
                            "rerun the stage that wrote it (`dvc repro --force <stage>`)") from exc
    raw = (schema.metadata or {}).get(META_KEY)
    if raw is None:
        return {}
    meta = json.loads(raw)
    check_format(path, meta, "metadata", "rerun the stage that wrote it")
    return meta
