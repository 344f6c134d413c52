"""sentencepiece subword tokenizer and the compact token store.

Special tokens sit at stable ids across retrains: pad=0, unk=1, bos=2, eos=3,
cls=4, mask=5 (then ``tokenize.extra_symbols``, if any, from id 6). Token ids
of a split are stored as one flat int32 array plus int64 offsets
(``ids[offsets[i]:offsets[i+1]]`` is document i), loadable memory-mapped; no
pickles.
"""
from __future__ import annotations

import io
import itertools
import random
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import sentencepiece as spm

from reprotext.config import TokenizeConfig
from reprotext.errors import ArtifactError, ConfigError
from reprotext.io import FORMAT_VERSION, check_format, read_json, sha256_file, write_json

PAD, UNK, BOS, EOS, CLS, MASK = 0, 1, 2, 3, 4, 5
SPECIALS = {"pad": PAD, "unk": UNK, "bos": BOS, "eos": EOS, "cls": CLS, "mask": MASK}
USER_SYMBOLS = ["[CLS]", "[MASK]"]
MODEL_FILE, VOCAB_FILE, META_FILE = "spm.model", "spm.vocab", "meta.json"
# Documents per sentencepiece call when encoding a split: sentencepiece returns
# Python lists (~36 bytes per id), so a whole 100 MB corpus at once would hold
# gigabytes; a batch this size still keeps every thread busy.
ENCODE_BATCH = 8192
# A text longer than this (characters) is encoded in chunks cut at spaces: sentencepiece holds a
# whole sentence as a symbol lattice, so one 50 MB document took 65 s and ~2.5 GB at once, and
# 16 s in chunks. Pieces never cross whitespace, so the ids are the same (a "word" longer than a
# chunk is the one exception: it is cut, as for training).
LONG_TEXT, LONG_CHUNK = 1 << 20, 1 << 16
# Token ids copied at a time (16 MB) when a token store written in parts gets its final file.
COPY_IDS = 1 << 22


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


@dataclass(frozen=True)
class TrainingSample:
    """The chunks a tokenizer is trained on, and what they were drawn from."""

    chunks: list[str]
    documents: int
    long_documents: int  # cut into several chunks instead of being skipped by sentencepiece
    chunks_seen: int  # chunks in the whole training text; more than len(chunks) when sampled


def sample_chunks(texts: Iterable[str], max_bytes: int, size: int, seed: int) -> TrainingSample:
    """A seeded uniform sample of at most ``size`` chunks of ``texts``, streamed.

    Reservoir sampling (Vitter's algorithm R) holds only the sample, never the
    whole chunked corpus; with no more than ``size`` chunks it keeps all of
    them, in order.
    """
    rng = random.Random(seed)
    chunks: list[str] = []
    seen = documents = long_documents = 0
    for text in texts:
        before = seen
        for chunk in chunk_text(text, max_bytes):
            if seen < size:
                chunks.append(chunk)
            else:
                j = rng.randrange(seen + 1)
                if j < size:
                    chunks[j] = chunk
            seen += 1
        documents += 1
        long_documents += seen - before > 1
    return TrainingSample(chunks, documents, long_documents, seen)


def train_tokenizer(texts: Iterable[str], cfg: TokenizeConfig, out_dir: Path) -> Tokenizer:
    """Train a sentencepiece model on ``texts`` and save it, its vocabulary and meta.json into ``out_dir``."""
    sample = sample_chunks(texts, cfg.max_sentence_length, cfg.input_sentence_size, cfg.seed)
    if not sample.chunks:
        raise ArtifactError("tokenizer training text is empty; check the train splits")
    chunks = len(sample.chunks)
    spm.set_random_generator_seed(cfg.seed)
    model = io.BytesIO()
    try:
        _train_spm(_drain(sample.chunks), model, cfg)
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
    training = {k: v for k, v in asdict(sample).items() if k != "chunks"}
    write_json(out_dir / META_FILE, {
        "format_version": FORMAT_VERSION,
        "sha256": tok.sha256,
        "vocab_size": tok.vocab_size,
        "specials": SPECIALS,
        "config": cfg.model_dump(),
        "training": {**training, "chunks": chunks},
    })
    return tok


def _drain(chunks: list[str]) -> Iterator[str]:
    """The chunks in order, each released as sentencepiece takes its own copy: the sample is never held twice."""
    chunks.reverse()
    while chunks:
        yield chunks.pop()


def _train_spm(chunks: Iterator[str], model: io.BytesIO, cfg: TokenizeConfig) -> None:
    spm.SentencePieceTrainer.train(
        sentence_iterator=chunks,
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
        # The word model would add a second "▁[CLS]"-style piece per user symbol and shift the fixed ids: there
        # the symbols are control symbols (reserved ids, never matched in text; a listed word is a word anyway).
        **{"control_symbols" if cfg.model_type == "word" else "user_defined_symbols":
           USER_SYMBOLS + list(cfg.extra_symbols)},
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
        ids = (self.sp.pad_id(), self.sp.unk_id(), self.sp.bos_id(), self.sp.eos_id(),
               self.sp.piece_to_id("[CLS]"), self.sp.piece_to_id("[MASK]"))
        if ids != (PAD, UNK, BOS, EOS, CLS, MASK):
            raise ArtifactError(f"{model_path}: special token ids {ids} differ from (pad, unk, bos, eos, cls, mask) = "
                                f"{(PAD, UNK, BOS, EOS, CLS, MASK)}; retrain it with reprotext")
        self.sha256 = sha256_file(model_path)

    @classmethod
    def load(cls, directory: str | Path) -> Tokenizer:
        """The tokenizer saved in ``directory`` by :func:`train_tokenizer`."""
        return cls(Path(directory) / MODEL_FILE)

    @property
    def vocab_size(self) -> int:
        return self.sp.get_piece_size()

    def pieces(self) -> list[str]:
        """Every piece, indexed by id."""
        return [self.sp.id_to_piece(i) for i in range(self.vocab_size)]

    def byte_mask(self) -> np.ndarray:
        """(V,) bool: which ids are byte-fallback pieces (``<0x00>`` ... ``<0xFF>``)."""
        return np.fromiter((self.sp.is_byte(i) for i in range(self.vocab_size)), dtype=bool, count=self.vocab_size)

    def encode(self, texts: Sequence[str], threads: int = 1) -> list[list[int]]:
        """Token ids of each text, encoded by sentencepiece on ``threads`` threads."""
        texts = list(texts)
        ids = self.sp.encode([t if len(t) <= LONG_TEXT else "" for t in texts], out_type=int, num_threads=threads)
        for i, text in enumerate(texts):
            if len(text) > LONG_TEXT:
                chunks = self.sp.encode(list(chunk_text(text, LONG_CHUNK)), out_type=int, num_threads=threads)
                ids[i] = list(itertools.chain.from_iterable(chunks))
        return ids

    def encode_array(self, texts: Sequence[str], threads: int = 1, batch_size: int = ENCODE_BATCH) -> TokenArray:
        """Token ids of ``texts`` as one TokenArray, ``batch_size`` texts per parallel sentencepiece call."""
        return TokenArray.concat(list(self.encode_batches([texts], threads, batch_size)))

    def encode_batches(self, batches: Iterable[Sequence[str]], threads: int = 1,
                       batch_size: int = ENCODE_BATCH) -> Iterator[TokenArray]:
        """Token ids of each text of ``batches``, in order, as TokenArrays of at most ``batch_size`` documents."""
        for texts in batches:
            for i in range(0, len(texts), batch_size):
                yield TokenArray.from_lists(self.encode(texts[i:i + batch_size], threads))

    def decode(self, ids: Sequence[int]) -> str:
        return self.sp.decode(list(ids))


@dataclass
class TokenArray:
    """Token ids of many documents: flat int32 ``ids`` and int64 ``offsets`` (n_docs + 1)."""

    ids: np.ndarray
    offsets: np.ndarray

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def __getitem__(self, i: int) -> np.ndarray:
        return self.ids[self.offsets[i]:self.offsets[i + 1]]

    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    @classmethod
    def from_lists(cls, docs: Sequence[Sequence[int]]) -> TokenArray:
        """Pack lists of ids; numpy iterates a C-level chain of the lists, not a Python loop per token."""
        lengths = np.fromiter(map(len, docs), dtype=np.int64, count=len(docs))
        offsets = np.zeros(len(docs) + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        ids = np.fromiter(itertools.chain.from_iterable(docs), dtype=np.int32, count=int(offsets[-1]))
        return cls(ids, offsets)

    @classmethod
    def concat(cls, parts: Sequence[TokenArray]) -> TokenArray:
        """The documents of ``parts``, in order, as one array."""
        if not parts:
            return cls(np.zeros(0, dtype=np.int32), np.zeros(1, dtype=np.int64))
        if len(parts) == 1:
            return parts[0]
        ids = np.concatenate([p.ids for p in parts]).astype(np.int32, copy=False)
        starts = np.cumsum([0] + [int(p.offsets[-1]) for p in parts[:-1]])
        offsets = np.concatenate([[0]] + [p.offsets[1:] + s for p, s in zip(parts, starts)]).astype(np.int64)
        return cls(ids, offsets)

    def save(self, directory: Path, tokenizer_sha256: str) -> None:
        """Write ids.npy, offsets.npy and meta.json into ``directory``."""
        directory.mkdir(parents=True, exist_ok=True)
        np.save(directory / "ids.npy", self.ids)
        np.save(directory / "offsets.npy", self.offsets)
        write_json(directory / META_FILE, {"format_version": FORMAT_VERSION, "tokenizer_sha256": tokenizer_sha256,
                                           "documents": len(self), "tokens": int(self.offsets[-1])})

    @classmethod
    def write(cls, directory: Path, parts: Iterable[TokenArray], tokenizer_sha256: str) -> TokenArray:
        """Save the documents of ``parts``, in order, as :meth:`save` does, holding one part at a time.

        The ids go to disk as they come; ids.npy gets its header once their number is known.

        Returns:
            The store, loaded memory-mapped.
        """
        directory.mkdir(parents=True, exist_ok=True)
        raw = directory / "ids.raw"
        lengths = []
        with open(raw, "wb") as f:
            for part in parts:
                f.write(np.ascontiguousarray(part.ids, dtype=np.int32).tobytes())
                lengths.append(part.lengths())
        offsets = np.zeros(sum(map(len, lengths)) + 1, dtype=np.int64)
        if len(offsets) > 1:
            np.cumsum(np.concatenate(lengths), out=offsets[1:])
        ids = np.lib.format.open_memmap(directory / "ids.npy", mode="w+", dtype=np.int32, shape=(int(offsets[-1]),))
        with open(raw, "rb") as f:
            for start in range(0, len(ids), COPY_IDS):
                chunk = np.frombuffer(f.read(4 * min(COPY_IDS, len(ids) - start)), dtype=np.int32)
                ids[start:start + len(chunk)] = chunk
        ids.flush()
        del ids
        raw.unlink()
        np.save(directory / "offsets.npy", offsets)
        write_json(directory / META_FILE, {"format_version": FORMAT_VERSION, "tokenizer_sha256": tokenizer_sha256,
                                           "documents": len(offsets) - 1, "tokens": int(offsets[-1])})
        return cls.load(directory, tokenizer_sha256)

    @classmethod
    def load(cls, directory: str | Path, tokenizer_sha256: str | None = None) -> TokenArray:
        """Load memory-mapped; with ``tokenizer_sha256``, refuse ids made by another tokenizer."""
        directory = Path(directory)
        try:
            meta = read_json(directory / META_FILE)
            ids = np.load(directory / "ids.npy", mmap_mode="r")
            offsets = np.load(directory / "offsets.npy")
        except (OSError, ValueError) as exc:
            raise ArtifactError(f"{directory}: token store missing or unreadable ({exc}); rerun `dvc repro tokenize`") from exc
        check_format(directory, meta, "token store", "rerun `dvc repro tokenize`")
        if tokenizer_sha256 is not None and meta["tokenizer_sha256"] != tokenizer_sha256:
            raise ArtifactError(f"{directory}: token ids were made by tokenizer {meta['tokenizer_sha256'][:12]}, "
                                f"not {tokenizer_sha256[:12]}; rerun `dvc repro tokenize`")
        return cls(ids, offsets)
