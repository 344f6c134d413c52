"""word2vec over BPE pieces (gensim), aligned row-for-row with the tokenizer ids, and its intrinsic evaluation.

The seminar's fastText idea: a word's pieces get vectors from their contexts,
and those vectors initialise the classifier's embedding layer
(Mikolov et al. 2013, negative sampling; Bojanowski et al. 2017, subwords).
"""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from reprotext.config import EmbedConfig
from reprotext.errors import ArtifactError, DataError
from reprotext.io import FORMAT_VERSION, check_format, read_json, write_json
from reprotext.tokenizer import PAD, TokenArray, Tokenizer

log = logging.getLogger(__name__)

VECTORS_FILE, META_FILE = "vectors.npy", "meta.json"
# gensim truncates sentences longer than this (its MAX_WORDS_IN_BATCH); longer
# documents are cut into consecutive chunks instead of losing their tails.
GENSIM_MAX_SENTENCE = 10_000
INIT_UNSEEN = "normal(0, s^2), s the std of the trained vectors' entries; pad row zero"
# The word-similarity benchmarks that ship inside the gensim wheel (gensim/test/test_data).
SIMILARITY_FILES = {"wordsim353": "wordsim353.tsv", "simlex999": "simlex999.txt"}
# Computing gensim's loss slows training by ~5%. On a corpus of at least
# LOSS_SAMPLE_MIN_JOBS jobs (gensim's jobs hold 10,000 words) it is measured on
# every LOSS_EVERY-th job only: ~1%, still an even sample of each epoch.
LOSS_EVERY, LOSS_SAMPLE_MIN_JOBS = 4, 100


class PieceCorpus:
    """Restartable iterable of documents as lists of piece strings (gensim reads it once per epoch).

    Strings, as gensim documents: with int keys its negative-sampling table
    (``make_cum_table``) would look counts up by key where it means by index.
    """

    def __init__(self, arrays: Sequence[TokenArray], pieces: Sequence[str]):
        self.arrays = arrays
        self.pieces = np.asarray(pieces, dtype=object)

    def __iter__(self) -> Iterator[list[str]]:
        for arr in self.arrays:
            ids = np.asarray(arr.ids)  # a plain view of the memory map: slicing a np.memmap costs more
            bounds = arr.offsets.tolist()
            for start, end in zip(bounds[:-1], bounds[1:]):
                for s in range(start, end, GENSIM_MAX_SENTENCE):
                    yield self.pieces[ids[s:min(s + GENSIM_MAX_SENTENCE, end)]].tolist()

    def n_tokens(self) -> int:
        return int(sum(a.offsets[-1] for a in self.arrays))


@dataclass
class EmbedResult:
    """Trained vectors aligned to the tokenizer, and how training went."""

    vectors: np.ndarray  # (V, D) float32, row i = tokenizer id i
    trained: np.ndarray  # (V,) bool: the row was learnt by word2vec, not initialised at random
    losses: list[float]  # word2vec loss per token, one per epoch (on large corpora from every LOSS_EVERY-th job)
    seconds: float  # training time (vocabulary scan excluded)
    effective_tokens: int  # tokens trained on after subsampling, all epochs

    @property
    def trained_rows(self) -> int:
        return int(self.trained.sum())

    @property
    def random_rows(self) -> int:
        return len(self.trained) - self.trained_rows - 1  # the pad row is neither

    def tokens_per_second(self, corpus_tokens: int) -> float:
        """Raw corpus tokens per second of training, all epochs."""
        return corpus_tokens * len(self.losses) / max(self.seconds, 1e-9)


class _LossMeter:
    """word2vec's loss per token in each epoch, measured on every ``every``-th job; thread-safe."""

    def __init__(self, every: int) -> None:
        self.every = every
        self.lock = threading.Lock()
        self.job, self.loss, self.words = 0, 0.0, 0
        self.epochs: list[float] = []

    def start_job(self) -> bool:
        """Whether the job about to run is measured: jobs every, 2 * every, ... of the epoch.

        The epoch's first job is skipped unless every is 1: its loss, the highest, would bias the sample.
        """
        with self.lock:
            self.job += 1
            return self.job % self.every == 0

    def end_job(self, measured: bool, loss: float, words: int) -> None:
        if measured:
            with self.lock:
                self.loss += loss
                self.words += words

    def end_epoch(self) -> float:
        with self.lock:
            self.epochs.append(self.loss / max(self.words, 1))
            self.job, self.loss, self.words = 0, 0.0, 0
            return self.epochs[-1]


def train_embeddings(corpus: PieceCorpus, cfg: EmbedConfig, progress: bool = True) -> EmbedResult:
    """Train word2vec on ``corpus`` and align its vectors to the tokenizer ids.

    With ``progress``, a bar on a terminal; where stderr is no terminal (a log, CI) one log line per epoch
    instead, not the bar's thousands of updates.
    """
    from gensim.models import Word2Vec
    from gensim.models.callbacks import CallbackAny2Vec
    from gensim.models.word2vec import MAX_WORDS_IN_BATCH  # words per gensim job (its batch_words default)

    bar = tqdm(total=corpus.n_tokens() * cfg.epochs, desc="word2vec", unit="tok", unit_scale=True,
               disable=None if progress else True)  # None: off where stderr is no terminal
    meter = _LossMeter(LOSS_EVERY if corpus.n_tokens() >= LOSS_SAMPLE_MIN_JOBS * MAX_WORDS_IN_BATCH else 1)

    class _Word2Vec(Word2Vec):
        """Word2Vec that measures its loss job by job and advances the progress bar.

        gensim sums the loss of a whole ``train()`` call in float32, so past
        ~1e7 a job's share is rounded away (gensim issue #2617); summing each
        measured job from zero and banking it in float64 keeps it exact. With
        several workers, jobs race on the model's loss fields, as in gensim
        itself, and the loss is approximate.
        """

        def _do_train_job(self, sentences, alpha, inits):  # gensim 4.4's private hook, called once per job
            measured = meter.start_job()
            self.compute_loss, self.running_training_loss = measured, 0.0
            tally, raw_tally = super()._do_train_job(sentences, alpha, inits)
            meter.end_job(measured, self.running_training_loss, raw_tally)
            bar.update(raw_tally)
            return tally, raw_tally

    class _EpochEnd(CallbackAny2Vec):
        def on_epoch_end(self, model) -> None:
            loss = meter.end_epoch()
            bar.set_postfix(loss=f"{loss:.4g}")
            if progress and bar.disable:
                log.info("word2vec epoch %d/%d: loss %.4g per token", len(meter.epochs), cfg.epochs, loss)

    model = _Word2Vec(
        vector_size=cfg.dim, window=cfg.window, negative=cfg.negative, hs=0,
        sg=1 if cfg.algorithm == "skipgram" else 0, min_count=cfg.min_count, sample=cfg.sample,
        workers=cfg.workers, seed=cfg.seed,
    )
    model.build_vocab(corpus)
    if len(model.wv) == 0:
        bar.close()
        raise DataError(f"word2vec vocabulary is empty: no piece occurs embed.min_count={cfg.min_count} times; "
                        "lower embed.min_count or add training text")
    start = time.perf_counter()
    effective, _ = model.train(corpus, total_examples=model.corpus_count, epochs=cfg.epochs, callbacks=[_EpochEnd()])
    seconds = time.perf_counter() - start
    bar.close()
    vectors, trained = align(model.wv, corpus.pieces.tolist(), cfg.seed)
    return EmbedResult(vectors, trained, meter.epochs, seconds, int(effective))


def align(wv, pieces: Sequence[str], seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A (V, D) matrix whose row i is the vector of piece i, and the (V,) mask of trained rows.

    Pieces word2vec never saw (the specials, pieces under min_count) get
    N(0, s^2) rows, s the std of the trained vectors' entries, so they start at
    the scale of the trained ones and the classifier learns them; the pad row
    is zero.
    """
    rng = np.random.default_rng(seed)
    out = rng.normal(0.0, float(wv.vectors.std()), size=(len(pieces), wv.vector_size)).astype(np.float32)
    row = {piece: i for i, piece in enumerate(pieces)}
    ids = np.fromiter((row[key] for key in wv.index_to_key), dtype=np.int64, count=len(wv))
    out[ids] = wv.vectors
    trained = np.zeros(len(pieces), dtype=bool)
    trained[ids] = True
    out[PAD], trained[PAD] = 0.0, False
    return out, trained


def nearest(vectors: np.ndarray, query: np.ndarray, k: int = 5, candidates: np.ndarray | None = None) -> list[int]:
    """Ids of the ``k`` rows most cosine-similar to the (D,) ``query``, among the (V,) bool ``candidates`` if given."""
    sims = _cosines(vectors, query)
    if candidates is not None:
        sims = np.where(candidates, sims, -np.inf)
        k = min(k, int(candidates.sum()))
    return np.argsort(-sims, kind="stable")[:k].tolist()


def _cosines(vectors: np.ndarray, query: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(vectors, axis=1) * np.linalg.norm(query) + 1e-12
    return vectors @ query / norms


def word_ids(tok: Tokenizer, words: Sequence[str], trained: np.ndarray) -> dict[str, list[int] | None]:
    """Each word's piece ids, or None when a piece was not trained.

    A word is tried as written, then lowercased, so one list of words serves a
    cased and a lowercased corpus.
    """
    forms = sorted({f for w in words for f in (w, w.lower())})
    encoded = dict(zip(forms, tok.encode(forms)))
    out: dict[str, list[int] | None] = {}
    for word in words:
        out[word] = next((encoded[f] for f in (word, word.lower()) if encoded[f] and trained[encoded[f]].all()), None)
    return out


def word_vector(vectors: np.ndarray, ids: Sequence[int]) -> np.ndarray:
    """A word's vector: the mean of its pieces' vectors."""
    return vectors[list(ids)].mean(axis=0)


@dataclass(frozen=True)
class Similarity:
    """Agreement of word-vector cosines with human similarity judgements."""

    spearman: float | None  # over the covered pairs; None with fewer than 3 or constant scores
    pairs: int
    covered: float  # share of pairs whose two words consist of trained pieces only
    whole_words: float  # share of pairs whose two words are each one trained piece (word2vec's own coverage)

    def as_dict(self) -> dict[str, float | int | None]:
        return asdict(self)


def read_pairs(path: Path) -> list[tuple[str, str, float]]:
    """(word, word, human score) rows of a tab-separated similarity file; ``#`` lines are comments."""
    pairs = []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.startswith("#"):
            a, b, score = line.split("\t")[:3]
            pairs.append((a, b, float(score)))
    return pairs


def similarity(vectors: np.ndarray, trained: np.ndarray, tok: Tokenizer,
               pairs: Sequence[tuple[str, str, float]]) -> Similarity:
    """Spearman correlation between human scores and the cosines of the words' vectors, on covered pairs."""
    from scipy.stats import spearmanr

    ids = word_ids(tok, [w for a, b, _ in pairs for w in (a, b)], trained)
    human, model = [], []
    whole = 0
    for a, b, score in pairs:
        ia, ib = ids[a], ids[b]
        if ia is not None and ib is not None:
            va, vb = word_vector(vectors, ia), word_vector(vectors, ib)
            model.append(float(va @ vb / (np.linalg.norm(va) * np.linalg.norm(vb) + 1e-12)))
            human.append(score)
            whole += len(ia) == len(ib) == 1
    rho = None
    if len(human) >= 3 and len(set(model)) > 1 and len(set(human)) > 1:
        rho = float(spearmanr(human, model).statistic)
    n = max(len(pairs), 1)
    return Similarity(rho, len(pairs), len(human) / n, whole / n)


def similarity_benchmarks(vectors: np.ndarray, trained: np.ndarray, tok: Tokenizer) -> dict[str, Similarity]:
    """:func:`similarity` on every file of :data:`SIMILARITY_FILES`, found with gensim's ``datapath``."""
    from gensim.test.utils import datapath

    out = {}
    for name, filename in SIMILARITY_FILES.items():
        path = Path(datapath(filename))
        if not path.is_file():
            raise DataError(f"{path}: gensim's word-similarity file is missing; reinstall gensim (pip install "
                            "--force-reinstall gensim)")
        out[name] = similarity(vectors, trained, tok, read_pairs(path))
    return out


def probe(vectors: np.ndarray, trained: np.ndarray, tok: Tokenizer, words: Sequence[str],
          k: int = 8) -> dict[str, dict]:
    """Nearest trained pieces to each probe word's vector and to each of its pieces (itself excluded).

    Returns:
        word -> {"pieces": [...], "trained": bool, "word": [[piece, cosine], ...],
        "per_piece": {piece: [[piece, cosine], ...]}} ("per_piece" only for words of several pieces).
    """
    pieces = tok.pieces()

    def around(query: np.ndarray, exclude: Sequence[int]) -> list[list]:
        candidates = trained.copy()
        candidates[list(exclude)] = False
        sims = _cosines(vectors, query)
        return [[pieces[i], round(float(sims[i]), 3)] for i in nearest(vectors, query, k, candidates)]

    out = {}
    for word, ids in zip(words, tok.encode(list(words))):
        entry = {"pieces": [pieces[i] for i in ids], "trained": bool(ids) and bool(trained[ids].all())}
        if ids:
            entry["word"] = around(word_vector(vectors, ids), ids)
        if len(ids) > 1:
            entry["per_piece"] = {pieces[i]: around(vectors[i], [i]) for i in dict.fromkeys(ids)}
        out[word] = entry
    return out


def write_report(directory: Path, result: EmbedResult, cfg: EmbedConfig, sims: Mapping[str, Similarity],
                 probes: Mapping[str, dict]) -> None:
    """Write ``report.md`` and ``intrinsic.json`` (similarities and neighbours) into ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    write_json(directory / "intrinsic.json", {"similarity": {n: s.as_dict() for n, s in sims.items()},
                                              "neighbours": probes})
    lines = [
        "# Embedding report",
        "",
        f"word2vec {cfg.algorithm}, dim {cfg.dim}, window {cfg.window}, {cfg.negative} negatives, "
        f"{cfg.epochs} epochs, min_count {cfg.min_count}, sample {cfg.sample:g}, seed {cfg.seed}.",
        f"{result.trained_rows} rows trained, {result.random_rows} initialised as {INIT_UNSEEN}.",
        "",
        "Loss per token by epoch: " + ", ".join(f"{x:.4f}" for x in result.losses),
        "",
        "A word's vector is the mean of its pieces' vectors; a pair is covered when every piece of both words "
        "was trained, and whole words when each word is a single trained piece.",
        "",
        "| similarity set | Spearman | pairs | covered | whole words |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, s in sims.items():
        rho = "n/a" if s.spearman is None else f"{s.spearman:.3f}"
        lines.append(f"| {name} | {rho} | {s.pairs} | {s.covered:.1%} | {s.whole_words:.1%} |")
    lines += ["", "## Nearest pieces", "", "| probe | pieces | nearest to the word vector |", "|---|---|---|"]
    for word, entry in probes.items():
        near = ", ".join(f"`{p}` {c:.2f}" for p, c in entry.get("word", []))
        mark = "" if entry["trained"] else " (untrained pieces)"
        lines.append(f"| {word}{mark} | {' '.join(f'`{p}`' for p in entry['pieces'])} | {near} |")
    multi = {w: e for w, e in probes.items() if "per_piece" in e}
    if multi:
        lines += ["", "| piece | nearest pieces |", "|---|---|"]
        for entry in multi.values():
            for piece, near in entry["per_piece"].items():
                lines.append(f"| `{piece}` | {', '.join(f'`{p}` {c:.2f}' for p, c in near)} |")
    (directory / "report.md").write_text("\n".join(lines) + "\n", encoding="utf-8")


def save(directory: Path, result: EmbedResult, cfg: EmbedConfig, tokenizer_sha256: str) -> None:
    """Write the vectors and meta.json (how they were made) into ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    np.save(directory / VECTORS_FILE, result.vectors)
    write_json(directory / META_FILE, {
        "format_version": FORMAT_VERSION,
        "tokenizer_sha256": tokenizer_sha256,
        "shape": list(result.vectors.shape),
        "trained_rows": result.trained_rows,
        "random_rows": result.random_rows,
        "init_unseen": INIT_UNSEEN,
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
    check_format(directory, meta, "embeddings", "rerun `dvc repro embed`")
    if tokenizer_sha256 is not None and meta["tokenizer_sha256"] != tokenizer_sha256:
        raise ArtifactError(f"{directory}: embeddings were aligned to tokenizer {meta['tokenizer_sha256'][:12]}, "
                            f"not {tokenizer_sha256[:12]}; rerun `dvc repro embed`")
    return vectors
