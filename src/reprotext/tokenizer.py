"""sentencepiece subword tokenizer and the compact token store.

Special tokens sit at stable ids across retrains: pad=0, unk=1, bos=2, eos=3,
cls=4, mask=5. Token ids of a split are stored as one flat int32 array plus
int64 offsets (``ids[offsets[i]:offsets[i+1]]`` is document i), loadable
memory-mapped; no pickles.
"""
from __future__ import annotations

import io
import logging
import random
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import sentencepiece as spm

from reprotext.config import TokenizeConfig
from reprotext.errors import ArtifactError, ConfigError
from reprotext.io import FORMAT_VERSION, read_json, sha256_file, write_json

log = logging.getLogger(__name__)

PAD, UNK, BOS, EOS, CLS, MASK = 0, 1, 2, 3, 4, 5
SPECIALS = {"pad": PAD, "unk": UNK, "bos": BOS, "eos": EOS, "cls": CLS, "mask": MASK}
USER_SYMBOLS = ["[CLS]", "[MASK]"]
MODEL_FILE, VOCAB_FILE, META_FILE = "spm.model", "spm.vocab", "meta.json"


def chunk_text(text: str, max_bytes: int) -> Iterator[str]:
    """Cut ``text`` at spaces into pieces of at most ``max_bytes`` UTF-8 bytes.

    sentencepiece silently skips training lines longer than its
    ``max_sentence_length``; cutting long documents keeps all of their text.
    """
    if len(text.encode("utf-8")) <= max_bytes:
        if text:
            yield text
        return
    buf: list[str] = []
    size = 0
    for word in text.split(" "):
        wlen = len(word.encode("utf-8")) + 1
        while wlen - 1 > max_bytes:  # a single huge "word": cut it by characters
            cut = word[: max(1, max_bytes // 4)]
            if buf:
                yield " ".join(buf)
                buf, size = [], 0
            yield cut
            word = word[len(cut):]
            wlen = len(word.encode("utf-8")) + 1
        if size + wlen > max_bytes and buf:
            yield " ".join(buf)
            buf, size = [], 0
        buf.append(word)
        size += wlen
    if buf:
        yield " ".join(buf)


def train_tokenizer(texts: Iterable[str], cfg: TokenizeConfig, out_dir: Path) -> "Tokenizer":
    """Train a sentencepiece model on ``texts`` and save it into ``out_dir``."""
    chunks = [c for t in texts for c in chunk_text(t, cfg.max_sentence_length)]
    if not chunks:
        raise ArtifactError("tokenizer training text is empty; check the train splits")
    rng = random.Random(cfg.seed)
    if len(chunks) > cfg.input_sentence_size:
        chunks = rng.sample(chunks, cfg.input_sentence_size)
    spm.set_random_generator_seed(cfg.seed)
    model = io.BytesIO()
    try:
        _train_spm(chunks, model, cfg)
    except RuntimeError as exc:
        # e.g. "Vocabulary size is smaller than required_chars": say it in one line.
        reason = str(exc).split("] ")[-1].splitlines()[0]
        raise ConfigError(f"tokenize: sentencepiece cannot train with these params: {reason}") from exc
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / MODEL_FILE).write_bytes(model.getvalue())
    tok = Tokenizer(out_dir / MODEL_FILE)
    with open(out_dir / VOCAB_FILE, "w", encoding="utf-8") as f:
        for i in range(tok.vocab_size):
            f.write(f"{tok.sp.id_to_piece(i)}\t{tok.sp.get_score(i):g}\n")
    write_json(out_dir / META_FILE, {
        "format_version": FORMAT_VERSION,
        "sha256": tok.sha256,
        "vocab_size": tok.vocab_size,
        "specials": SPECIALS,
        "config": cfg.model_dump(),
        "training_chunks": len(chunks),
    })
    return tok


def _train_spm(chunks: list[str], model: io.BytesIO, cfg: TokenizeConfig) -> None:
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(chunks),
        model_writer=model,
        model_type=cfg.model_type,
        vocab_size=cfg.vocab_size,
        character_coverage=cfg.character_coverage,
        byte_fallback=cfg.byte_fallback,
        max_sentence_length=cfg.max_sentence_length,
        input_sentence_size=0,  # sampling is done above, seeded
        shuffle_input_sentence=False,
        num_threads=cfg.threads,
        pad_id=PAD, unk_id=UNK, bos_id=BOS, eos_id=EOS,
        user_defined_symbols=USER_SYMBOLS,
        hard_vocab_limit=False,
        normalization_rule_name="identity",  # prepare already normalised the text
        minloglevel=2,
    )


class Tokenizer:
    """A trained sentencepiece model with the project's special ids."""

    def __init__(self, model_path: str | Path):
        model_path = Path(model_path)
        if not model_path.is_file():
            raise ArtifactError(f"{model_path}: tokenizer model not found; run `dvc repro tokenize`")
        self.path = model_path
        self.sp = spm.SentencePieceProcessor()
        try:
            self.sp.load(str(model_path))
        except (OSError, RuntimeError) as exc:
            raise ArtifactError(f"{model_path}: not a valid sentencepiece model ({exc}); rerun `dvc repro tokenize`") from exc
        if self.sp.pad_id() != PAD or self.sp.piece_to_id("[CLS]") != CLS:
            raise ArtifactError(f"{model_path}: special token ids differ from pad={PAD}, cls={CLS}; retrain it with reprotext")
        self.sha256 = sha256_file(model_path)

    @classmethod
    def load(cls, directory: str | Path) -> "Tokenizer":
        return cls(Path(directory) / MODEL_FILE)

    @property
    def vocab_size(self) -> int:
        return self.sp.get_piece_size()

    def pieces(self) -> list[str]:
        return [self.sp.id_to_piece(i) for i in range(self.vocab_size)]

    def encode(self, texts: Sequence[str], threads: int = 1) -> list[list[int]]:
        return self.sp.encode(list(texts), out_type=int, num_threads=threads)

    def decode(self, ids: Sequence[int]) -> str:
        return self.sp.decode(list(ids))


@dataclass
class TokenArray:
    """Token ids of many documents: flat ``ids`` and ``offsets`` (n_docs + 1)."""

    ids: np.ndarray
    offsets: np.ndarray

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def __getitem__(self, i: int) -> np.ndarray:
        return self.ids[self.offsets[i]:self.offsets[i + 1]]

    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    @classmethod
    def from_lists(cls, docs: Sequence[Sequence[int]]) -> "TokenArray":
        lengths = np.fromiter((len(d) for d in docs), dtype=np.int64, count=len(docs))
        offsets = np.zeros(len(docs) + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        ids = np.fromiter((t for d in docs for t in d), dtype=np.int32, count=int(offsets[-1]))
        return cls(ids, offsets)

    def save(self, directory: Path, tokenizer_sha256: str) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        np.save(directory / "ids.npy", self.ids)
        np.save(directory / "offsets.npy", self.offsets)
        write_json(directory / META_FILE, {"format_version": FORMAT_VERSION, "tokenizer_sha256": tokenizer_sha256,
                                           "documents": len(self), "tokens": int(self.offsets[-1])})

    @classmethod
    def load(cls, directory: str | Path, tokenizer_sha256: str | None = None) -> "TokenArray":
        """Load memory-mapped; with ``tokenizer_sha256``, refuse ids made by another tokenizer."""
        directory = Path(directory)
        try:
            meta = read_json(directory / META_FILE)
            ids = np.load(directory / "ids.npy", mmap_mode="r")
            offsets = np.load(directory / "offsets.npy")
        except (OSError, ValueError) as exc:
            raise ArtifactError(f"{directory}: token store missing or unreadable ({exc}); rerun `dvc repro tokenize`") from exc
        if tokenizer_sha256 is not None and meta["tokenizer_sha256"] != tokenizer_sha256:
            raise ArtifactError(f"{directory}: token ids were made by tokenizer {meta['tokenizer_sha256'][:12]}, "
                                f"not {tokenizer_sha256[:12]}; rerun `dvc repro tokenize`")
        return cls(ids, offsets)
