"""word2vec over BPE pieces (gensim), aligned row-for-row with the tokenizer ids.

The seminar's fastText idea: a word's pieces get vectors from their contexts,
and those vectors initialise the classifier's embedding layer
(Mikolov et al. 2013, negative sampling; Bojanowski et al. 2017, subwords).
"""
from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from reprotext.config import EmbedConfig
from reprotext.errors import ArtifactError
from reprotext.io import FORMAT_VERSION, read_json, write_json
from reprotext.tokenizer import PAD, TokenArray

log = logging.getLogger(__name__)

VECTORS_FILE, META_FILE = "vectors.npy", "meta.json"
# gensim truncates sentences longer than this (its MAX_WORDS_IN_BATCH); longer
# documents are cut into consecutive chunks instead of losing their tails.
GENSIM_MAX_SENTENCE = 10_000


class PieceCorpus:
    """Restartable iterable of piece-string sentences over token arrays (gensim reads it once per epoch)."""

    def __init__(self, arrays: Sequence[TokenArray], pieces: Sequence[str]):
        self.arrays = arrays
        self.pieces = np.asarray(pieces, dtype=object)

    def __iter__(self) -> Iterator[list[str]]:
        for arr in self.arrays:
            for i in range(len(arr)):
                doc = arr[i]
                for start in range(0, len(doc), GENSIM_MAX_SENTENCE):
                    yield self.pieces[doc[start:start + GENSIM_MAX_SENTENCE]].tolist()

    def n_tokens(self) -> int:
        return int(sum(a.offsets[-1] for a in self.arrays))


@dataclass
class EmbedResult:
    vectors: np.ndarray  # (V, D) float32, row i = tokenizer id i
    trained_rows: int
    random_rows: int
    losses: list[float]
    words_per_second: float


def train_embeddings(corpus: PieceCorpus, cfg: EmbedConfig) -> EmbedResult:
    """Train word2vec on ``corpus`` and align its vectors to the tokenizer ids."""
    from gensim.models import Word2Vec
    from gensim.models.callbacks import CallbackAny2Vec

    class _Progress(CallbackAny2Vec):
        def __init__(self) -> None:
            self.bar = tqdm(total=cfg.epochs, desc="word2vec", unit="epoch")
            self.losses: list[float] = []
            self._last = 0.0

        def on_epoch_end(self, model) -> None:
            cum = model.get_latest_training_loss()  # cumulative over epochs
            self.losses.append(cum - self._last)
            self._last = cum
            self.bar.update(1)
            self.bar.set_postfix(loss=f"{self.losses[-1]:.3g}")

    progress = _Progress()
    model = Word2Vec(
        vector_size=cfg.dim, window=cfg.window, negative=cfg.negative, hs=0,
        sg=1 if cfg.algorithm == "skipgram" else 0, min_count=cfg.min_count, sample=cfg.sample,
        workers=cfg.workers, seed=cfg.seed, compute_loss=True,
    )
    model.build_vocab(corpus)
    if len(model.wv) == 0:
        raise ArtifactError(f"word2vec vocabulary is empty: no piece occurs embed.min_count={cfg.min_count} times")
    start = time.perf_counter()
    model.train(corpus, total_examples=model.corpus_count, epochs=cfg.epochs, callbacks=[progress], compute_loss=True)
    elapsed = time.perf_counter() - start
    progress.bar.close()
    vectors, trained = align(model.wv, corpus.pieces.tolist(), cfg.seed)
    return EmbedResult(vectors, trained, len(vectors) - trained - 1, progress.losses,
                       corpus.n_tokens() * cfg.epochs / max(elapsed, 1e-9))


def align(wv, pieces: Sequence[str], seed: int) -> tuple[np.ndarray, int]:
    """A (V, D) matrix whose row i is the vector of piece i.

    Pieces word2vec never saw (specials, rare pieces under min_count) get
    N(0, s^2) rows, s the per-dimension std of the trained vectors, so they sit
    at the scale of the trained ones; the pad row is zero.
    """
    dim = wv.vector_size
    rng = np.random.default_rng(seed)
    std = float(wv.vectors.std())
    out = rng.normal(0.0, std, size=(len(pieces), dim)).astype(np.float32)
    trained = 0
    for i, piece in enumerate(pieces):
        idx = wv.key_to_index.get(piece)
        if idx is not None and i != PAD:
            out[i] = wv.vectors[idx]
            trained += 1
    out[PAD] = 0.0
    return out, trained


def nearest(vectors: np.ndarray, row: int, k: int = 5) -> list[int]:
    """Ids of the ``k`` rows most cosine-similar to ``row`` (itself first when trained)."""
    norms = np.linalg.norm(vectors, axis=1) + 1e-12
    sims = vectors @ vectors[row] / (norms * norms[row])
    return np.argsort(-sims, kind="stable")[:k].tolist()


def save(directory: Path, result: EmbedResult, cfg: EmbedConfig, tokenizer_sha256: str) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    np.save(directory / VECTORS_FILE, result.vectors)
    write_json(directory / META_FILE, {
        "format_version": FORMAT_VERSION,
        "tokenizer_sha256": tokenizer_sha256,
        "shape": list(result.vectors.shape),
        "trained_rows": result.trained_rows,
        "random_rows": result.random_rows,
        "init_unseen": "normal(0, std of trained vectors); pad row zero",
        "config": cfg.model_dump(),
    })


def load(directory: str | Path, tokenizer_sha256: str | None = None) -> np.ndarray:
    """The (V, D) matrix; with ``tokenizer_sha256``, refuse vectors aligned to another tokenizer."""
    directory = Path(directory)
    try:
        meta = read_json(directory / META_FILE)
        vectors = np.load(directory / VECTORS_FILE)
    except (OSError, ValueError) as exc:
        raise ArtifactError(f"{directory}: embeddings missing or unreadable ({exc}); rerun `dvc repro embed`") from exc
    if meta.get("format_version") != FORMAT_VERSION:
        raise ArtifactError(f"{directory}: embeddings format {meta.get('format_version')} is not {FORMAT_VERSION}; rerun `dvc repro embed`")
    if tokenizer_sha256 is not None and meta["tokenizer_sha256"] != tokenizer_sha256:
        raise ArtifactError(f"{directory}: embeddings were aligned to tokenizer {meta['tokenizer_sha256'][:12]}, "
                            f"not {tokenizer_sha256[:12]}; rerun `dvc repro embed`")
    return vectors
