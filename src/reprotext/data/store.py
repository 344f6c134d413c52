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


def read_meta(path: str | Path) -> dict[str, Any]:
    """The ``reprotext`` metadata of a Parquet file; empty when it has none (a file made elsewhere)."""
    raw = (pq.read_schema(path).metadata or {}).get(META_KEY)
    if raw is None:
        return {}
    meta = json.loads(raw)
    if meta.get("format_version") != FORMAT_VERSION:
        raise ArtifactError(f"{path}: metadata format {meta.get('format_version')} is not {FORMAT_VERSION}; "
                            "rerun the stage that wrote it")
    return meta
