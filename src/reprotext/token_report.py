"""What a tokenizer does to a corpus: per-split statistics and the tokenize stage's report.

Every number here is a count or a ratio of counts, so it repeats exactly on a
rerun and may go into the DVC metrics file.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from reprotext.tokenizer import UNK, TokenArray, Tokenizer

REPORT_FILE, PLOT_FILE = "report.md", "tokens.png"


@dataclass(frozen=True)
class SplitStats:
    """How one split's text came out of the tokenizer."""

    documents: int
    tokens: int
    tokens_per_doc: float
    tokens_per_doc_p50: float
    tokens_per_doc_p95: float
    tokens_per_doc_max: int
    chars_per_token: float
    unk_rate: float
    byte_rate: float  # share of tokens that are byte-fallback pieces: characters the vocabulary lacks
    vocab_used: float  # share of the vocabulary that occurs in this split

    def as_dict(self) -> dict[str, float]:
        """The stats as a flat dict."""
        return asdict(self)


def piece_counts(arr: TokenArray, vocab_size: int) -> np.ndarray:
    """(V,) int64: how often each id occurs in ``arr``."""
    return np.bincount(np.asarray(arr.ids), minlength=vocab_size)


def split_stats(arr: TokenArray, chars: int, counts: np.ndarray, byte_mask: np.ndarray) -> SplitStats:
    """Statistics of one encoded split.

    Args:
        arr: the split's token ids.
        chars: characters of the split's text, for characters per token.
        counts: :func:`piece_counts` of ``arr``.
        byte_mask: (V,) bool, the tokenizer's byte-fallback ids.
    """
    lengths = arr.lengths()
    tokens = int(counts.sum())
    if len(arr) == 0:  # an empty unlabeled corpus: zeros, not NaN (JSON has no NaN)
        return SplitStats(0, 0, 0.0, 0.0, 0.0, 0, 0.0, 0.0, 0.0, 0.0)
    p50, p95 = np.percentile(lengths, [50, 95])
    per_token = max(tokens, 1)
    return SplitStats(
        documents=len(arr),
        tokens=tokens,
        tokens_per_doc=float(lengths.mean()),
        tokens_per_doc_p50=float(p50),
        tokens_per_doc_p95=float(p95),
        tokens_per_doc_max=int(lengths.max()),
        chars_per_token=chars / per_token,
        unk_rate=int(counts[UNK]) / per_token,
        byte_rate=int(counts[byte_mask].sum()) / per_token,
        vocab_used=float(np.count_nonzero(counts)) / len(counts),
    )


def segmentations(tok: Tokenizer, texts: Iterable[str], n: int = 3, max_chars: int = 160) -> list[tuple[str, list[str]]]:
    """The first ``n`` non-empty ``texts``, cut to about ``max_chars`` at a space, and their pieces."""
    out = []
    for text in texts:
        if len(out) == n:
            break
        if not text:
            continue
        head = text if len(text) <= max_chars else text[:max_chars].rsplit(" ", 1)[0]
        out.append((head, tok.sp.encode(head, out_type=str)))
    return out


def write_report(directory: Path, tok: Tokenizer, stats: Mapping[str, SplitStats], lengths: Mapping[str, np.ndarray],
                 train_counts: np.ndarray, examples: Mapping[str, list[tuple[str, list[str]]]],
                 training: Mapping[str, int]) -> None:
    """Write ``report.md`` and ``tokens.png`` into ``directory``.

    Args:
        stats: per split (``source/train``, ...).
        lengths: tokens per document, per split, for the histogram.
        train_counts: (V,) occurrences of each id in all training text.
        examples: segmentation examples per split.
        training: the tokenizer's training sample counts (its meta.json ``training``).
    """
    directory.mkdir(parents=True, exist_ok=True)
    _plot(directory / PLOT_FILE, lengths, train_counts)
    pieces = tok.pieces()
    used = int(np.count_nonzero(train_counts))
    lines = [
        "# Tokenizer report",
        "",
        f"Vocabulary: {tok.vocab_size} pieces; {used} ({used / tok.vocab_size:.1%}) occur in the training text, "
        f"{tok.vocab_size - used} never do.",
        f"Training text: {training['documents']} documents cut into {training['chunks_seen']} chunks "
        f"({training['long_documents']} long documents cut rather than skipped); "
        f"{training['chunks']} chunks sampled for training.",
        "",
        "| split | documents | tokens | tokens/doc | p50 | p95 | max | chars/token | unk rate | byte rate | vocab used |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, s in stats.items():
        lines.append(f"| {name} | {s.documents} | {s.tokens} | {s.tokens_per_doc:.1f} | {s.tokens_per_doc_p50:.0f} | "
                     f"{s.tokens_per_doc_p95:.0f} | {s.tokens_per_doc_max} | {s.chars_per_token:.2f} | "
                     f"{s.unk_rate:.2e} | {s.byte_rate:.2e} | {s.vocab_used:.1%} |")
    top = np.argsort(-train_counts, kind="stable")[:20]
    longest = sorted(range(tok.vocab_size), key=lambda i: (-len(pieces[i]), i))[:10]
    lines += [
        "",
        f"![tokens per document and piece frequencies]({PLOT_FILE})",
        "",
        "Most frequent pieces: " + " ".join(f"`{pieces[i]}`" for i in top),
        "",
        "Longest pieces: " + " ".join(f"`{pieces[i]}`" for i in longest),
        "",
        "## Segmentation examples",
    ]
    for name, pairs in examples.items():
        lines += ["", f"### {name}", ""]
        for text, segmented in pairs:
            lines += [f"> {text}", "", "`" + " ".join(segmented) + "`", ""]
    (directory / REPORT_FILE).write_text("\n".join(lines).rstrip() + "\n", encoding="utf-8")


def _plot(path: Path, lengths: Mapping[str, np.ndarray], train_counts: np.ndarray) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    longest = max((int(v.max()) for v in lengths.values() if len(v)), default=1)
    bins = np.unique(np.geomspace(1, max(longest, 2) + 1, 40).astype(int))
    for name, values in lengths.items():
        if len(values):
            left.hist(np.maximum(values, 1), bins=bins, histtype="step", label=name)
    left.set(xscale="log", xlabel="tokens per document", ylabel="documents", title="Document lengths")
    left.legend(fontsize=8)
    freq = np.sort(train_counts[train_counts > 0])[::-1]
    right.loglog(np.arange(1, len(freq) + 1), freq)
    right.set(xlabel="piece rank", ylabel="occurrences in training text", title="Vocabulary usage")
    fig.tight_layout()
    # No timestamp in the metadata: the same report gives the same bytes, so DVC's hash repeats.
    fig.savefig(path, dpi=100, metadata={"Software": None})
    plt.close(fig)
