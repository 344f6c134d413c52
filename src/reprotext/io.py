"""Atomic writes and versioned artefact metadata.

A stage writes every output under a temporary name in the same directory and
renames it into place at the end, so a killed stage leaves either the old
output or the new one, never a half-written file that DVC would trust.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from reprotext.errors import ArtifactError

FORMAT_VERSION = 1  # of every file format of ours; a reader refuses any other (see check_format)


def _tmp_sibling(path: Path) -> Path:
    _sweep_stale(path)
    return path.with_name(f".{path.name}.tmp-{os.getpid()}")


def _sweep_stale(path: Path) -> None:
    """Remove the ``.<name>.tmp-<pid>`` / ``.<name>.old-<pid>`` siblings that a killed process left behind.

    A SIGKILL skips the ``finally`` that cleans them up; nothing trusts them, but
    without this they would pile up next to the output, one per killed run.
    """
    if not path.parent.is_dir():
        return
    prefix = f".{path.name}."
    for stale in path.parent.iterdir():
        kind, _, pid = stale.name.removeprefix(prefix).partition("-")
        if not stale.name.startswith(prefix) or kind not in ("tmp", "old") or not pid.isdigit():
            continue
        if int(pid) == os.getpid() or _running(int(pid)):
            continue
        if stale.is_dir() and not stale.is_symlink():
            shutil.rmtree(stale, ignore_errors=True)
        else:
            stale.unlink(missing_ok=True)


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


@contextlib.contextmanager
def atomic_file(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path; on success it replaces ``path`` in one rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _tmp_sibling(path)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


@contextlib.contextmanager
def atomic_dir(path: str | Path) -> Iterator[Path]:
    """Yield a fresh temporary directory; on success it replaces ``path``.

    The old directory is moved aside before the new one is renamed in, so at any
    moment ``path`` is either absent, complete-old or complete-new.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _tmp_sibling(path)
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    old = path.with_name(f".{path.name}.old-{os.getpid()}")
    try:
        yield tmp
        if path.exists():
            os.replace(path, old)
        os.replace(tmp, path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(old, ignore_errors=True)


def write_json(path: str | Path, obj: Any) -> None:
    """Write JSON atomically, with sorted keys so reruns are byte-identical."""
    with atomic_file(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=True, ensure_ascii=False) + "\n", encoding="utf-8")


def read_json(path: str | Path) -> Any:
    return json.loads(Path(path).read_text(encoding="utf-8"))


def versioned(meta: Mapping[str, Any]) -> dict[str, Any]:
    """``meta`` with this version's ``format_version`` (a reader checks it with :func:`check_format`)."""
    return {"format_version": FORMAT_VERSION, **meta}


def check_format(where: str | Path, meta: Mapping[str, Any], name: str, fix: str) -> None:
    """Refuse metadata of another format version: ``<where>: <name> format X is not N; <fix>``."""
    if meta.get("format_version") != FORMAT_VERSION:
        raise ArtifactError(f"{where}: {name} format {meta.get('format_version')} is not {FORMAT_VERSION}; {fix}")


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()
