"""Parquet frames that record how they were made, in the file's own key-value metadata."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from reprotext.errors import ArtifactError
from reprotext.io import FORMAT_VERSION

META_KEY = b"reprotext"


def write_frame(frame: pd.DataFrame, path: str | Path, meta: dict[str, Any]) -> None:
    """Write ``frame`` (no index) to ``path`` with ``meta`` as JSON under the ``reprotext`` key.

    Keys are sorted and nothing time-dependent is stored, so the same frame and
    meta give a byte-identical file.
    """
    table = pa.Table.from_pandas(frame, preserve_index=False)
    record = json.dumps({"format_version": FORMAT_VERSION, **meta}, sort_keys=True, ensure_ascii=False)
    table = table.replace_schema_metadata({**(table.schema.metadata or {}), META_KEY: record.encode()})
    pq.write_table(table, path)


def read_frame(path: str | Path, columns: list[str] | None = None) -> pd.DataFrame:
    """A stage's Parquet output; a truncated or corrupted file is one clear error, not a traceback."""
    try:
        return pd.read_parquet(path, columns=columns)
    except (pa.ArrowException, OSError, ValueError, KeyError) as exc:
        reason = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else exc.__class__.__name__
        raise ArtifactError(f"{path}: not a readable Parquet file ({reason}); "
                            "rerun the stage that wrote it (`dvc repro --force <stage>`)") from exc


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
    if meta.get("format_version") != FORMAT_VERSION:
        raise ArtifactError(f"{path}: metadata format {meta.get('format_version')} is not {FORMAT_VERSION}; "
                            "rerun the stage that wrote it")
    return meta
