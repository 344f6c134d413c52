"""Saved torch artefacts: a state dict beside the JSON record that rebuilds it, versioned and tokenizer-checked.

The classifier (``model.pt``/``model.json``), the multitask model, the pretrained
encoder and the dual encoder are all saved this way: the weights as a plain CPU
state dict (read back with ``weights_only``, so loading runs no pickled code) and
a JSON file with the format version, the tokenizer's sha256 and whatever else
rebuilds the module. Loading checks the version, rebuilds the module, refuses
one made with another tokenizer, then loads the weights; every failure is one
:class:`ArtifactError` line that names the directory and says what rebuilds it.
"""
from __future__ import annotations

import pickle
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import torch
from torch import nn

from reprotext.errors import ArtifactError
from reprotext.io import atomic_file, check_format, read_json, versioned, write_json

M = TypeVar("M", bound=nn.Module)
# What a damaged or foreign weights file raises in torch.load / load_state_dict.
WEIGHT_ERRORS = (OSError, RuntimeError, EOFError, ValueError, pickle.UnpicklingError)
# What a config of another version raises when it rebuilds the module (a missing, extra or mistyped field).
CONFIG_ERRORS = (TypeError, KeyError, AttributeError)


@dataclass(frozen=True)
class ArtifactKind:
    """One kind of saved torch artefact: its two files and the words of its errors.

    Attributes:
        name: what errors call it ("model", "dual encoder", ...).
        weights_file: the state dict's file name.
        meta_file: the JSON record's file name.
        fix: what makes a fresh one ("rerun `dvc repro multitask`").
        made: how an error says it met its tokenizer ("model was trained", "encoder was pretrained").
        tokenizer_fix: the way out of a tokenizer mismatch (default: ``fix``).
        tokenizer_key: where the record keeps the tokenizer's sha256 (a path of keys).
    """

    name: str
    weights_file: str
    meta_file: str
    fix: str
    made: str
    tokenizer_fix: str = ""
    tokenizer_key: tuple[str, ...] = ("config", "tokenizer_sha256")

    def tokenizer(self, meta: Mapping[str, Any]) -> Any:
        """The tokenizer sha256 ``meta`` records (None when it records none)."""
        node: Any = meta
        for key in self.tokenizer_key:
            node = node.get(key) if isinstance(node, Mapping) else None
        return node


def save_artifact(directory: Path, kind: ArtifactKind, state: Mapping[str, torch.Tensor] | None,
                  meta: Mapping[str, Any]) -> None:
    """``state`` (moved to the CPU) into ``kind.weights_file`` and ``meta`` with the format version into
    ``kind.meta_file``, each written atomically; ``state`` None writes the record alone."""
    directory.mkdir(parents=True, exist_ok=True)
    if state is not None:
        with atomic_file(directory / kind.weights_file) as tmp:
            torch.save({k: v.cpu() for k, v in state.items()}, tmp)
    write_json(directory / kind.meta_file, versioned(meta))


def read_artifact_meta(directory: str | Path, kind: ArtifactKind) -> dict:
    """The JSON record of a saved artefact, its format version checked."""
    directory = Path(directory)
    try:
        meta = read_json(directory / kind.meta_file)
    except (OSError, ValueError) as exc:
        raise ArtifactError(f"{directory}: {kind.name} missing or unreadable ({exc}); {kind.fix}") from exc
    check_format(directory, meta, kind.name, kind.fix)
    return meta


def check_tokenizer(directory: str | Path, kind: ArtifactKind, meta: Mapping[str, Any],
                    tokenizer_sha256: str | None) -> None:
    """Refuse an artefact made with another tokenizer than ``tokenizer_sha256`` (None: no check)."""
    theirs = kind.tokenizer(meta)
    if tokenizer_sha256 is not None and theirs != tokenizer_sha256:
        raise ArtifactError(f"{directory}: {kind.made} with tokenizer {str(theirs)[:12]}, not {tokenizer_sha256[:12]}; "
                            f"{kind.tokenizer_fix or kind.fix}")


def read_state(directory: str | Path, kind: ArtifactKind) -> dict[str, torch.Tensor]:
    """The saved state dict, on the CPU."""
    path = Path(directory) / kind.weights_file
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except WEIGHT_ERRORS as exc:
        raise ArtifactError(f"{path}: corrupted or incompatible weights ({exc.__class__.__name__}); {kind.fix}") from exc


def load_artifact(directory: str | Path, kind: ArtifactKind, build: Callable[[dict], M],
                  tokenizer_sha256: str | None = None) -> tuple[M, dict]:
    """The saved module, rebuilt by ``build`` from its record, its weights loaded, in eval mode; and the record.

    Refuses a record of another format version, one ``build`` cannot read, one made with another tokenizer than
    ``tokenizer_sha256`` (None: no check) and weights that do not load into the module.
    """
    directory = Path(directory)
    meta = read_artifact_meta(directory, kind)
    try:
        module = build(meta)
    except CONFIG_ERRORS as exc:
        raise ArtifactError(f"{directory}: {kind.name} config does not match this version of reprotext ({exc}); "
                            f"{kind.fix}") from exc
    check_tokenizer(directory, kind, meta, tokenizer_sha256)
    state = read_state(directory, kind)
    try:
        module.load_state_dict(state)
    except WEIGHT_ERRORS as exc:
        raise ArtifactError(f"{directory / kind.weights_file}: corrupted or incompatible weights "
                            f"({exc.__class__.__name__}); {kind.fix}") from exc
    module.eval()
    return module, meta
