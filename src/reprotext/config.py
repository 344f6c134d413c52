"""params.yaml -> one typed, validated config per stage.

Every stage reads only its own section. Unknown keys are errors (a typo must not
silently fall back to a default), and every value is range-checked here, before
any work starts.
"""
from __future__ import annotations

import difflib
from pathlib import Path
from typing import Literal, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from reprotext.errors import ConfigError


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PrepareConfig(_Section):
    """Where the data comes from and how its text is normalised."""

    source: str = "builtin:20newsgroups"
    target: str = "builtin:reuters-r8"
    text_column: str = "text"
    label_column: str = "label"
    lowercase: bool = False
    min_chars: int = Field(1, ge=1)
    # Take at most this many documents per dataset (stratified, seeded): quick trials.
    max_docs: int | None = Field(None, ge=2)
    seed: int = 0


class SplitConfig(_Section):
    """Stratified, seeded train/dev/test split."""

    train: float = Field(0.7, gt=0, lt=1)
    dev: float = Field(0.2, gt=0, lt=1)
    test: float = Field(0.1, gt=0, lt=1)
    seed: int = 42

    @model_validator(mode="after")
    def _ratios_sum_to_one(self) -> "SplitConfig":
        total = self.train + self.dev + self.test
        if abs(total - 1.0) > 1e-6:
            raise ValueError(
                f"split ratios train+dev+test must sum to 1, got {self.train}+{self.dev}+{self.test}={total:g}"
            )
        return self


class TokenizeConfig(_Section):
    """sentencepiece subword model."""

    model_type: Literal["bpe", "unigram"] = "bpe"
    vocab_size: int = Field(16000, ge=64)
    character_coverage: float = Field(1.0, gt=0, le=1)
    byte_fallback: bool = True
    # Documents are cut into chunks of at most this many bytes for training, so
    # no long document is silently skipped by sentencepiece.
    max_sentence_length: int = Field(4096, ge=64)
    # At most this many training chunks are sampled (seeded) for training.
    input_sentence_size: int = Field(2_000_000, ge=100)
    seed: int = 0
    threads: int = Field(2, ge=1)

    @model_validator(mode="after")
    def _vocab_holds_the_fixed_pieces(self) -> "TokenizeConfig":
        # 6 special pieces, and the 256 byte pieces when byte fallback is on.
        fixed = 6 + (256 if self.byte_fallback else 0)
        if self.vocab_size <= fixed:
            raise ValueError(f"vocab_size must exceed the {fixed} fixed pieces (6 specials"
                             f"{' + 256 bytes for byte_fallback' if self.byte_fallback else ''}); raise it")
        return self


class EmbedConfig(_Section):
    """word2vec over BPE pieces (gensim)."""

    algorithm: Literal["skipgram", "cbow"] = "skipgram"
    dim: int = Field(100, ge=2)
    window: int = Field(5, ge=1)
    negative: int = Field(5, ge=1)
    epochs: int = Field(5, ge=1)
    min_count: int = Field(2, ge=1)
    sample: float = Field(1e-3, ge=0)
    workers: int = Field(1, ge=1)
    seed: int = 0


class TrainConfig(_Section):
    """The source-task classifier."""

    model: Literal["bag"] = "bag"
    pooling: Literal["mean", "max"] = "mean"
    embeddings: Literal["pretrained", "random"] = "pretrained"
    freeze_embeddings: bool = False
    hidden_dim: int = Field(0, ge=0)
    dropout: float = Field(0.2, ge=0, lt=1)
    max_len: int = Field(1024, ge=1)
    batch_size: int = Field(32, ge=1)
    lr: float = Field(3e-3, gt=0)
    weight_decay: float = Field(0.0, ge=0)
    max_epochs: int = Field(15, ge=1)
    patience: int = Field(3, ge=0)
    seed: int = 42


class FinetuneConfig(_Section):
    """The target task: the trained encoder under a new head."""

    batch_size: int = Field(32, ge=1)
    lr: float = Field(3e-3, gt=0)
    weight_decay: float = Field(0.0, ge=0)
    dropout: float = Field(0.2, ge=0, lt=1)
    max_epochs: int = Field(15, ge=1)
    patience: int = Field(3, ge=0)
    seed: int = 42


class EvaluateConfig(_Section):
    """Test-set evaluation."""

    batch_size: int = Field(128, ge=1)


SECTIONS: dict[str, type[_Section]] = {
    "prepare": PrepareConfig,
    "split": SplitConfig,
    "tokenize": TokenizeConfig,
    "embed": EmbedConfig,
    "train": TrainConfig,
    "finetune": FinetuneConfig,
    "evaluate": EvaluateConfig,
}

S = TypeVar("S", bound=_Section)


def read_params(path: str | Path = "params.yaml") -> dict:
    """Read params.yaml as a dict, with a clear error when it is missing or not YAML."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: params file not found; run from the repository root or pass --params")
    try:
        params = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({exc.__class__.__name__}: {str(exc).splitlines()[0]})") from exc
    if not isinstance(params, dict):
        raise ConfigError(f"{path}: expected a mapping of stage sections, got {type(params).__name__}")
    unknown = sorted(set(params) - set(SECTIONS))
    if unknown:
        raise ConfigError(f"{path}: unknown section {unknown[0]!r}{_did_you_mean(unknown[0], SECTIONS)}")
    return params


def parse_section(name: str, values: dict | None, where: str = "params.yaml") -> _Section:
    """Validate one section's values into its typed config."""
    cls = SECTIONS[name]
    try:
        return cls.model_validate(values or {})
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = ".".join(str(p) for p in (name, *err["loc"]))
        if err["type"] == "extra_forbidden":
            key = str(err["loc"][-1])
            hint = _did_you_mean(key, cls.model_fields)
            raise ConfigError(f"{where}: unknown key {loc!r}{hint or '; valid keys: ' + ', '.join(cls.model_fields)}") from exc
        got = err.get("input")
        msg = err["msg"].removeprefix("Value error, ")
        raise ConfigError(f"{where}: {loc} = {got!r}: {msg}") from exc


def load_section(name: str, cls: type[S], path: str | Path = "params.yaml") -> S:
    """Load and validate one stage's section of params.yaml."""
    params = read_params(path)
    config = parse_section(name, params.get(name), where=str(path))
    assert isinstance(config, cls)
    return config


def _did_you_mean(word: str, choices) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""
