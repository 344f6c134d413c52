"""The lecture's report: one section per lesson, each figure signed with its DVC experiment and MLflow run.

Every number comes from a sweep read back by :func:`reprotext.lecture.sweep.collect`:
the parent runs' metrics (the stages' metrics files), the train runs' per-epoch
metric history, and artefacts the stages logged (the tokenizers, the word2vec
report). A lesson whose experiments are not in the sweep (a smaller size, a
failed run) says so instead of showing a figure.
"""
from __future__ import annotations

import json
import math
import re
import tempfile
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from reprotext.lecture.plan import _value
from reprotext.lecture.sweep import Result, Sweep, download, output_file
from reprotext.tokenizer import UNK, Tokenizer
from reprotext.tracking import git_commit, redact

EXAMPLES = 3  # BPE segmentation examples


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _fmt(x: float, spec: str = ".3f") -> str:
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else format(x, spec)


def _source(r: Result, stage: str = "train") -> str:
    run = r.runs.get(stage, "?")
    return f"experiment `{r.dvc_name}`, MLflow {stage} run `{run}` (parent `{r.parent}`)"


class Figures:
    """Numbered figures saved under one directory, each signed with where its data came from."""

    def __init__(self, directory: Path, report: Path):
        self.dir, self.report, self.n = directory, report, 0
        self.dir.mkdir(parents=True, exist_ok=True)

    def save(self, fig, name: str, sources: Sequence[tuple[Result, str]], caption: str) -> list[str]:
        """Sign ``fig`` with its sources, save it as ``<name>.png`` and return its markdown (image + caption)."""
        plt = _plt()
        self.n += 1
        signature = "; ".join(f"{r.dvc_name}: {stage} run {r.runs.get(stage, '?')}" for r, stage in sources)
        fig.text(0.005, 0.005, f"Figure {self.n}. MLflow runs: {signature}", fontsize=6, ha="left", va="bottom",
                 wrap=True)
        fig.tight_layout(rect=(0, 0.05, 1, 1))
        path = self.dir / f"{name}.png"
        fig.savefig(path, dpi=100, metadata={"Software": None})
        plt.close(fig)
        rel = path.relative_to(self.report.parent).as_posix()
        where = "; ".join(_source(r, stage) for r, stage in sources)
        return [f"![{caption}]({rel})", "", f"*Figure {self.n}. {caption}* Source: {where}.", ""]


def _missing(sweep: Sweep, names: Sequence[str]) -> list[str]:
    absent = [n for n in names if not sweep.ok(n)]
    why = ", ".join(f"`{n}` ({sweep.results[n].status})" if n in sweep.results else f"`{n}` (not in size "
                    f"{sweep.plan.size})" for n in absent)
    return [f"Not shown: this sweep has no results for {why}.", ""]


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    header = [str(h).replace("|", "\\|") for h in header]
    rows = [[str(c).replace("|", "\\|") for c in row] for row in rows]
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" if i == 0 else "---:" for i in range(len(header))) + "|"]
    return out + ["| " + " | ".join(map(str, row)) + " |" for row in rows] + [""]


def _bars(ax, labels: Sequence[str], series: dict[str, Sequence[float]], ylabel: str, fmt: str = "{:.3f}") -> None:
    width = 0.8 / max(len(series), 1)
    x = np.arange(len(labels))
    for i, (name, values) in enumerate(series.items()):
        values = [0.0 if v is None or math.isnan(v) else v for v in values]
        bars = ax.bar(x + (i - (len(series) - 1) / 2) * width, values, width, label=name)
        for b, v in zip(bars, values):
            ax.annotate(fmt.format(v), (b.get_x() + b.get_width() / 2, b.get_height()), ha="center", va="bottom",
                        fontsize=7)
    ax.set_xticks(x, labels, fontsize=8)
    ax.set_ylabel(ylabel)
    if len(series) > 1:
        ax.legend(fontsize=7)


def _accuracies(r: Result) -> tuple[float, float]:
    """(dev accuracy at the restored epoch, test accuracy of that model)."""
    return r.m("train/dev/accuracy"), r.m("evaluate/source/test/accuracy")


# ------------------------------------------------------------------------------------------- lessons


def overfitting(sweep: Sweep, figs: Figures) -> list[str]:
    lines = ["## 1. Overfitting and early stopping", ""]
    if not sweep.ok("overfit"):
        return lines + _missing(sweep, ["overfit"])
    r = sweep["overfit"]
    h, best = r.history, int(r.m("train/best_epoch"))
    plt = _plt()
    fig, axes = plt.subplots(1, 3, figsize=(14, 4.2))
    for split in ("train", "dev"):
        axes[0].plot(h["epoch"], h[f"{split}/loss"], marker="o", ms=3, label=f"{split} loss")
        axes[1].plot(h["epoch"], h[f"{split}/accuracy"], marker="o", ms=3, label=f"{split} accuracy")
    norms = [c for c in h if c.startswith("weights/") and c.endswith("/l2")]
    for c in norms:
        axes[2].plot(h["epoch"], h[c], label=c.removeprefix("weights/").removesuffix("/l2"))
    axes[2].set_yscale("log")
    for ax, label in zip(axes, ("cross-entropy", "accuracy", "L2 norm of the weights")):
        ax.axvline(best, color="grey", ls="--", label=f"early stopping's epoch ({best})")
        ax.set(xlabel="epoch", ylabel=label)
        ax.legend(fontsize=7)
    fig.suptitle(f"{r.dvc_name}: {r.exp.title}", fontsize=10)
    last = h.iloc[-1]
    first = h.iloc[0]
    rose = last["dev/loss"] > r.m("train/dev/loss")
    lines += [
        f"The baseline with early stopping switched off (patience = epochs): {len(h)} epochs on "
        f"{_fmt(r.m('split/source/train_docs'), ',.0f')} training documents. "
        f"Train loss falls from {_fmt(first['train/loss'])} to {_fmt(last['train/loss'])}, while dev loss is lowest "
        f"at epoch {best} ({_fmt(r.m('train/dev/loss'))}) and ends at {_fmt(last['dev/loss'])}"
        + (": from there on the model fits the training set, not the task." if rose else ".")
        + f" Early stopping (on dev loss) restores epoch {best}: dev accuracy {_fmt(r.m('train/dev/accuracy'))}, "
        f"against {_fmt(last['dev/accuracy'])} at the last epoch; on the test split the restored model scores "
        f"{_fmt(r.m('evaluate/source/test/accuracy'))}."
        + (" Dev accuracy can still rise while dev loss climbs: the model grows over-confident on the documents it "
           "gets wrong, which the loss punishes and accuracy does not see." if rose and last["dev/accuracy"]
           > r.m("train/dev/accuracy") else ""),
        "",
    ]
    growth = [(c.removeprefix("weights/").removesuffix("/l2"), first[c], h[c].iloc[best], last[c]) for c in norms]
    total = [float(np.sqrt(sum(h[c].iloc[i] ** 2 for c in norms))) for i in (0, best, len(h) - 1)]
    per_epoch_before = (total[1] - total[0]) / max(best, 1)
    per_epoch_after = (total[2] - total[1]) / max(len(h) - 1 - best, 1)
    lines += [f"The norm of all weights goes from {_fmt(total[0])} (epoch 0) to {_fmt(total[1])} at the restored "
              f"epoch and {_fmt(total[2])} at the last: {_fmt(per_epoch_before, '+.3f')} per epoch before the "
              f"restored epoch, {_fmt(per_epoch_after, '+.3f')} per epoch after it. Weights that keep growing once "
              "dev loss has turned are the model sharpening its fit of the training set (what L2 and weight decay "
              "push against).", ""]
    lines += _table(["layer", "L2 norm, epoch 0", f"epoch {best} (restored)", f"epoch {int(last['epoch'])} (last)"],
                    [(f"`{n}`", _fmt(a), _fmt(b), _fmt(c)) for n, a, b, c in growth])
    if sweep.ok("baseline"):
        b = sweep["baseline"]
        lines += [f"With the default patience the baseline (`{b.dvc_name}`) stopped by itself after "
                  f"{_fmt(b.m('train/epochs_run'), '.0f')} epochs and restored epoch {_fmt(b.m('train/best_epoch'), '.0f')}.", ""]
    return lines + figs.save(fig, "overfitting", [(r, "train")],
                             "Train and dev loss and accuracy per epoch of a model left to overfit, the epoch early "
                             "stopping picked (dashed), and each layer's weight norm.")


def _near_zero(r: Result) -> dict[str, float]:
    row = r.best_row()
    if row is None:
        return {}
    return {c.removeprefix("weights/share_below_"): float(row[c]) for c in row.index
            if c.startswith("weights/share_below_")}


def _comparable(sweep: Sweep, wanted: Iterable[str]) -> list[str]:
    """The experiments of ``wanted`` that succeeded, when the baseline and one more did; else none."""
    names = [n for n in wanted if sweep.ok(n)]
    return names if "baseline" in names and len(names) >= 2 else []


def regularisers(sweep: Sweep, figs: Figures) -> list[str]:
    lines = ["## 2. L1 against L2 against none", ""]
    wanted = ("baseline", "l1", "l2")
    names = _comparable(sweep, wanted)
    if not names:
        return lines + _missing(sweep, list(wanted))
    rs = [sweep[n] for n in names]
    labels = ["none" if n == "baseline" else n.upper() for n in names]
    shares = [_near_zero(r) for r in rs]
    thresholds = sorted({t for s in shares for t in s}, key=float)
    plt = _plt()
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    _bars(left, labels, {"dev": [_accuracies(r)[0] for r in rs], "test": [_accuracies(r)[1] for r in rs]}, "accuracy")
    _bars(right, labels, {f"|w| < {t}": [s.get(t, float("nan")) for s in shares] for t in thresholds},
          "share of weight entries", "{:.1%}")
    left.set_title("accuracy of the restored epoch", fontsize=9)
    right.set_title("near-zero weights (all weight matrices, restored epoch)", fontsize=9)
    rows = []
    for label, r, s in zip(labels, rs, shares):
        coef = r.exp.overrides.get("train.l1") or r.exp.overrides.get("train.l2") or 0
        rows.append((label, f"{coef:g}", _fmt(_accuracies(r)[0]), _fmt(_accuracies(r)[1]),
                     *(_fmt(s.get(t, float("nan")), ".1%") for t in thresholds)))
    lines += ["The penalty is added to the cross-entropy. In plain gradient descent, L1 = λ Σ|w| pulls every weight "
              "towards zero by the same amount per step, so small weights end at (about) zero and the model becomes "
              "sparse, while L2 = λ Σw² pulls in proportion to the weight, shrinking all without zeroing any. The "
              "optimiser here is AdamW, which rescales each weight's gradient by its own running size: a weight the "
              "data rarely touches (the embedding of a rare piece) is pulled to zero at about the learning rate per "
              "step under either penalty.", ""]
    lines += _table(["penalty", "λ", "dev accuracy", "test accuracy", *(f"share |w| < {t}" for t in thresholds)], rows)
    if thresholds:
        t = thresholds[-1]
        lines += ["At the restored epoch, the share of weights below " + t + ": "
                  + ", ".join(f"{label} {_fmt(sh.get(t, float('nan')), '.1%')}" for label, sh in zip(labels, shares))
                  + "; test accuracy: " + ", ".join(f"{label} {_fmt(_accuracies(r)[1])}" for label, r in zip(labels, rs))
                  + ".", ""]
    return lines + figs.save(fig, "l1_l2", [(r, "train") for r in rs],
                             "Dev and test accuracy and the share of near-zero weights without a penalty, with L1 and "
                             "with L2.")


def dropout_batchnorm(sweep: Sweep, figs: Figures) -> list[str]:
    lines = ["## 3. Dropout, DropConnect and batch norm", ""]
    wanted = ("baseline", "dropout", "dropconnect", "batchnorm")
    names = _comparable(sweep, wanted)
    if not names:
        return lines + _missing(sweep, list(wanted))
    rs = [sweep[n] for n in names]
    labels = ["all off" if n == "baseline" else n for n in names]
    gaps = []
    for r in rs:
        row = r.best_row()
        gaps.append((row["train/accuracy"] - row["dev/accuracy"], row["dev/loss"] - row["train/loss"])
                    if row is not None else (float("nan"), float("nan")))
    plt = _plt()
    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    _bars(axes[0], labels, {"dev": [_accuracies(r)[0] for r in rs], "test": [_accuracies(r)[1] for r in rs]},
          "accuracy")
    _bars(axes[1], labels, {"train - dev accuracy": [g[0] for g in gaps], "dev - train loss": [g[1] for g in gaps]},
          "gap at the restored epoch")
    for label, r in zip(labels, rs):
        axes[2].plot(r.history["epoch"], r.history["dev/loss"], marker="o", ms=3, label=label)
    axes[2].set(xlabel="epoch", ylabel="dev loss")
    axes[2].legend(fontsize=7)
    axes[0].set_title("accuracy of the restored epoch", fontsize=9)
    axes[1].set_title("generalisation gap", fontsize=9)
    rows = [(label, r.exp.title if r.exp.name != "baseline" else "no dropout, no DropConnect, no batch norm",
             _fmt(_accuracies(r)[0]), _fmt(_accuracies(r)[1]), _fmt(g[0]), _fmt(g[1]), _fmt(r.m("train/best_epoch"), ".0f"))
            for label, r, g in zip(labels, rs, gaps)]
    lines += ["Each switch is on alone against the baseline with all three off (the head has one hidden layer, "
              "where DropConnect and batch norm act). Train accuracy is measured during the epoch, with dropout "
              "active; the gap is train minus dev at the epoch early stopping restored.", ""]
    lines += _table(["setting", "what", "dev accuracy", "test accuracy", "train-dev accuracy gap",
                     "dev-train loss gap", "restored epoch"], rows)
    ranked = sorted(zip(labels, rs, gaps), key=lambda x: -np.nan_to_num(_accuracies(x[1])[1], nan=-1))
    narrow = min(zip(labels, gaps), key=lambda x: np.nan_to_num(x[1][0], nan=np.inf))
    lines += [f"Best test accuracy: {ranked[0][0]} ({_fmt(_accuracies(ranked[0][1])[1])}); smallest train-dev accuracy "
              f"gap: {narrow[0]} ({_fmt(narrow[1][0])}).", ""]
    return lines + figs.save(fig, "dropout_batchnorm", [(r, "train") for r in rs],
                             "Dev and test accuracy, the train/dev gap, and dev loss per epoch with dropout, "
                             "DropConnect or batch norm switched on.")


def gradient_descent(sweep: Sweep, figs: Figures) -> list[str]:
    lines = ["## 4. Full-batch, stochastic and mini-batch gradient descent", ""]
    wanted = ("full-batch", "sgd", "baseline")
    names = _comparable(sweep, wanted)
    if not names:
        return lines + _missing(sweep, list(wanted))
    rs = [sweep[n] for n in names]
    labels = {"full-batch": "full batch (1 step/epoch)", "sgd": "stochastic (batch 1)",
              "baseline": f"mini-batch ({sweep['baseline'].exp.overrides.get('train.batch_size', 32)})"}
    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.2))
    rows = []
    for n, r in zip(names, rs):
        h = r.history
        for split, style in (("train", "-"), ("dev", "--")):
            if "time/elapsed_seconds" in h:
                axes[0].plot(h["time/elapsed_seconds"], h[f"{split}/loss"], style, marker="o", ms=3,
                             label=f"{labels[n]}, {split}")
            axes[1].plot(h["train/steps"], h[f"{split}/loss"], style, marker="o", ms=3, label=f"{labels[n]}, {split}")
        rows.append((labels[n], _fmt(r.m("train/epochs_run"), ".0f"), _fmt(r.m("train/steps"), ".0f"),
                     _fmt(r.train.get("fit_seconds", float("nan")), ".1f"),
                     _fmt(r.train.get("fit_seconds", float("nan")) / max(r.m("train/steps"), 1) * 1000, ".2f"),
                     _fmt(h["train/loss"].min()), _fmt(r.m("train/dev/loss")), _fmt(_accuracies(r)[0])))
    axes[0].set(xlabel="wall time since training started (s, end of each epoch)", ylabel="loss", xscale="log")
    axes[1].set(xlabel="optimiser steps", ylabel="loss", xscale="log")
    for ax in axes:
        ax.legend(fontsize=6)
    lines += ["The same model and learning rate; only the number of examples per step differs (and the epoch budget, "
              "see the table; mini-batch is the baseline, which ran alone, the others in parallel). "
              "Losses are per epoch (train: the mean over the epoch's batches; dev: after the epoch), plotted "
              "against the optimiser steps taken and the wall time spent so far.", ""]
    lines += _table(["gradient descent", "epochs", "steps", "fit seconds", "ms per step", "lowest train loss",
                     "best dev loss", "dev accuracy"], rows)
    return lines + figs.save(fig, "gradient_descent", [(r, "train") for r in rs],
                             "Train (solid) and dev (dashed) loss against wall time and against steps for full-batch, "
                             "stochastic and mini-batch gradient descent.")


ENCODERS = {"baseline": "bag", "ffnn": "ffnn", "cnn": "cnn", "rnn": "rnn", "transformer": "transformer"}


def encoders(sweep: Sweep, figs: Figures) -> list[str]:
    lines = ["## 5. Encoders side by side", ""]
    names = _comparable(sweep, ENCODERS)
    if not names:
        return lines + _missing(sweep, list(ENCODERS))
    rs = [sweep[n] for n in names]
    labels = [ENCODERS[n] for n in names]
    plt = _plt()
    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    _bars(axes[0], labels, {"dev": [_accuracies(r)[0] for r in rs], "test": [_accuracies(r)[1] for r in rs]}, "accuracy")
    _bars(axes[1], labels, {"all": [r.m("train/parameters") for r in rs],
                            "without the embedding table": [r.m("train/parameters_without_embeddings") for r in rs]},
          "parameters", "{:,.0f}")
    axes[1].set_yscale("log")
    _bars(axes[2], labels, {"whole fit": [r.train.get("fit_seconds", float("nan")) for r in rs],
                            "per epoch": [r.train.get("fit_seconds", float("nan")) / max(r.m("train/epochs_run"), 1)
                                          for r in rs]}, "seconds", "{:.1f}")
    rows = [(label, _value(r.exp.overrides.get("train.lr", "params.yaml")), _fmt(_accuracies(r)[0]),
             _fmt(_accuracies(r)[1]), f"{r.m('train/parameters'):,.0f}",
             f"{r.m('train/parameters_without_embeddings'):,.0f}", _fmt(r.m("train/epochs_run"), ".0f"),
             _fmt(r.train.get("fit_seconds", float("nan")), ".1f"))
            for label, r in zip(labels, rs)]
    lines += ["One encoder at a time under the same head, embeddings (word2vec), data and early stopping. Training "
              "time is the fit's wall time: the baseline (bag) ran first and alone, the others "
              f"{sweep.meta.get('jobs', 'several')} at a time; compare the times with that in mind.", ""]
    lines += _table(["encoder", "learning rate", "dev accuracy", "test accuracy", "parameters", "without embeddings",
                     "epochs", "fit seconds"], rows)
    return lines + figs.save(fig, "encoders", [(r, "train") for r in rs],
                             "Accuracy, parameter count and training time of the bag, feed-forward, CNN, RNN and "
                             "Transformer encoders.")


def _test_texts(sweep: Sweep, r: Result) -> list[str] | None:
    path = output_file(sweep, r, "split", "data/split", "source/test.parquet")
    return None if path is None else pd.read_parquet(path, columns=["text"])["text"].tolist()


def oov(tok: Tokenizer, texts: Sequence[str]) -> dict[str, float]:
    """How the whitespace-separated words of ``texts`` come out of ``tok``, weighted by their frequency.

    oov: share of words the vocabulary cannot spell: ``<unk>`` (or, with byte fallback, spelled byte by byte);
    split: share of the other words cut into several pieces; tokens_per_word: pieces per word.
    Pieces never cross whitespace, so a word encodes alone as it does in its sentence.
    """
    counts = Counter(w for t in texts for w in t.split())
    words = list(counts)
    byte = tok.byte_mask()
    n = sum(counts.values())
    unknown = split = tokens = 0
    for word, ids in zip(words, tok.encode(words)):
        c = counts[word]
        tokens += c * len(ids)
        if any(i == UNK or byte[i] for i in ids):
            unknown += c
        elif len(ids) > 1:
            split += c
    return {"words": n, "oov": unknown / max(n, 1), "split": split / max(n, 1), "tokens_per_word": tokens / max(n, 1)}


def tokenizers(sweep: Sweep, figs: Figures, work: Path) -> list[str]:
    lines = ["## 6. BPE against whole words", ""]
    if not sweep.ok("baseline", "words"):
        return lines + _missing(sweep, ["baseline", "words"])
    rs = {"BPE": sweep["baseline"], "whole words": sweep["words"]}
    toks, stats = {}, {}
    for label, r in rs.items():
        model = download(sweep, r.runs.get("tokenize", ""), "tokenizer/spm.model", work / r.exp.name)
        texts = _test_texts(sweep, r)
        if model is None or texts is None:
            return lines + [f"Not shown: the tokenizer of `{r.dvc_name}` or its test split is not available "
                            "(MLflow artefact tokenizer/spm.model, DVC cache).", ""]
        toks[label] = Tokenizer(model)
        stats[label] = oov(toks[label], texts)
    plt = _plt()
    fig, axes = plt.subplots(1, 3, figsize=(13, 4))
    labels = list(rs)
    _bars(axes[0], labels, {"vocabulary": [r.m("tokenize/vocab_size") for r in rs.values()]}, "pieces", "{:,.0f}")
    _bars(axes[1], labels, {"out of vocabulary": [s["oov"] for s in stats.values()],
                            "cut into pieces": [s["split"] for s in stats.values()]}, "share of source test words",
          "{:.1%}")
    _bars(axes[2], labels, {"dev": [_accuracies(r)[0] for r in rs.values()],
                            "test": [_accuracies(r)[1] for r in rs.values()]}, "accuracy")
    rows = [(label, f"{r.m('tokenize/vocab_size'):,.0f}", f"{s['oov']:.2%}", f"{s['split']:.2%}",
             f"{s['tokens_per_word']:.2f}", _fmt(_accuracies(r)[0]), _fmt(_accuracies(r)[1]))
            for (label, r), s in zip(rs.items(), stats.values())]
    n_test = next(iter(stats.values()))["words"]
    lines += [f"Both tokenizers are trained on the same training text with the same vocabulary budget. On the "
              f"source test split ({n_test:,} words), a word the whole-word vocabulary did not keep becomes `<unk>`: "
              "out of vocabulary, its meaning lost. BPE spells a rare word with smaller pieces, so (with byte fallback "
              "for unseen characters) no word is out of vocabulary; it pays with more tokens per word.", ""]
    lines += _table(["tokenizer", "vocabulary", "test words out of vocabulary", "test words cut into pieces",
                     "tokens per word", "dev accuracy", "test accuracy"], rows)
    lines += figs.save(fig, "bpe_words", [(r, stage) for stage in ("tokenize", "train") for r in rs.values()],
                       "Vocabulary size, out-of-vocabulary rate on the source test split, and accuracy for BPE and "
                       "whole words.")
    lines += ["### Segmentation examples (source test split)", ""]
    texts = [t for t in (_test_texts(sweep, rs["BPE"]) or []) if t][:EXAMPLES]
    for text in texts:
        head = text if len(text) <= 140 else text[:140].rsplit(" ", 1)[0]
        lines += [f"> {head}", ""]
        for label, tok in toks.items():
            pieces = [tok.sp.id_to_piece(i) for i in tok.encode([head])[0]]
            lines += [f"- {label}: `{' '.join(pieces)}`"]
        lines += [""]
    return lines


def _neighbours(sweep: Sweep, r: Result, work: Path) -> dict | None:
    path = download(sweep, r.runs.get("embed", ""), "report/intrinsic.json", work / f"{r.exp.name}-embed")
    return json.loads(path.read_text()) if path else None


def word2vec(sweep: Sweep, figs: Figures, work: Path) -> list[str]:
    lines = ["## 7. word2vec", ""]
    if not sweep.ok("baseline"):
        return lines + _missing(sweep, ["baseline"])
    b = sweep["baseline"]
    skip = _neighbours(sweep, b, work)
    cbow = _neighbours(sweep, sweep["cbow"], work) if sweep.ok("cbow") else None
    if skip:
        lines += ["### Nearest neighbours", "",
                  "Nearest BPE pieces (cosine) to chosen words; a word's vector is the mean of its pieces' vectors.", ""]
        header = ["word", "pieces", "skip-gram neighbours"] + (["CBOW neighbours"] if cbow else [])
        rows = []
        for word, entry in skip["neighbours"].items():
            near = lambda e: ", ".join(f"`{p}` {c:.2f}" for p, c in (e or {}).get("word", [])[:6])
            rows.append([word, " ".join(f"`{p}`" for p in entry["pieces"]), near(entry)]
                        + ([near(cbow["neighbours"].get(word))] if cbow else []))
        lines += _table(header, rows)
        lines += [f"Source: {_source(b, 'embed')}" + (f"; {_source(sweep['cbow'], 'embed')}" if cbow else "")
                  + " (artefact report/intrinsic.json).", ""]
    if sweep.ok("cbow"):
        c = sweep["cbow"]
        sims = sorted({k.split("/")[1] for k in b.metrics if k.startswith("embed/") and k.endswith("/spearman")})
        plt = _plt()
        fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
        _bars(left, sims, {"skip-gram": [b.m(f"embed/{s}/spearman") for s in sims],
                           "CBOW": [c.m(f"embed/{s}/spearman") for s in sims]}, "Spearman ρ with human judgements")
        _bars(right, ["skip-gram", "CBOW"], {"dev": [_accuracies(b)[0], _accuracies(c)[0]],
                                             "test": [_accuracies(b)[1], _accuracies(c)[1]]}, "classifier accuracy")
        lines += ["### Skip-gram against CBOW", "",
                  "Skip-gram predicts the context from a piece, CBOW the piece from its context (averaged). "
                  "Intrinsic: agreement with human similarity ratings; extrinsic: the classifier they initialise.", ""]
        lines += _table(["algorithm", *(f"{s} ρ" for s in sims), "dev accuracy", "test accuracy"],
                        [(n, *(_fmt(r.m(f"embed/{s}/spearman")) for s in sims), _fmt(_accuracies(r)[0]),
                          _fmt(_accuracies(r)[1])) for n, r in (("skip-gram", b), ("CBOW", c))])
        lines += figs.save(fig, "skipgram_cbow", [(b, "embed"), (c, "embed")],
                           "Word-similarity correlation and downstream accuracy of skip-gram and CBOW vectors.")
    else:
        lines += _missing(sweep, ["cbow"])
    if sweep.ok("random-init"):
        r = sweep["random-init"]
        plt = _plt()
        fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
        for label, x in (("word2vec init", b), ("random init", r)):
            left.plot(x.history["epoch"], x.history["dev/loss"], marker="o", ms=3, label=f"{label}, dev")
            left.plot(x.history["epoch"], x.history["train/loss"], ls=":", label=f"{label}, train")
            right.plot(x.history["epoch"], x.history["dev/accuracy"], marker="o", ms=3, label=label)
        left.set(xlabel="epoch", ylabel="loss")
        right.set(xlabel="epoch", ylabel="dev accuracy")
        left.legend(fontsize=7)
        right.legend(fontsize=7)
        lines += ["### Pretrained against random initialisation", ""]
        lines += _table(["embedding init", "dev accuracy", "test accuracy", "restored epoch", "dev loss"],
                        [(n, _fmt(_accuracies(x)[0]), _fmt(_accuracies(x)[1]), _fmt(x.m("train/best_epoch"), ".0f"),
                          _fmt(x.m("train/dev/loss"))) for n, x in (("word2vec", b), ("random", r))])
        lines += figs.save(fig, "pretrained_random", [(b, "train"), (r, "train")],
                           "Loss and dev accuracy per epoch with word2vec-initialised and random embeddings.")
    else:
        lines += _missing(sweep, ["random-init"])
    return lines


def _variant_name(v: str) -> str:
    return {"pretrained": "fine-tuned (source encoder)", "scratch_train_init": "scratch (train's init)",
            "scratch_random": "scratch (random init)"}.get(v, v)


def transfer(sweep: Sweep, figs: Figures) -> list[str]:
    lines = ["## 8. Transfer learning, few-shot and zero-shot", ""]
    if not sweep.ok("baseline"):
        return lines + _missing(sweep, ["baseline"])
    b = sweep["baseline"]
    runs = {m.group(1): v for k, v in b.metrics.items() if (m := re.fullmatch(r"finetune/runs/([^/]+)/dev/accuracy", k))}
    few = {}
    for k, v in b.metrics.items():
        m = re.fullmatch(r"finetune/fewshot/k(\d+)/([^/]+)/accuracy_mean", k)
        if m:
            few.setdefault(m.group(2), {})[int(m.group(1))] = (v, b.m(f"finetune/fewshot/k{m.group(1)}/{m.group(2)}/accuracy_std", 0.0))
    zs_dev = {m.group(1): v for k, v in b.metrics.items() if (m := re.fullmatch(r"finetune/zeroshot/dev/([^/]+)/accuracy", k))}
    zs_test = {m.group(1): v for k, v in b.metrics.items()
               if (m := re.fullmatch(r"evaluate/target/zeroshot/([^/]+)/accuracy", k))}
    if not runs:
        return lines + ["Not shown: the baseline's finetune metrics have no per-variant runs.", ""]
    plt = _plt()
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    variants = list(runs)
    _bars(axes[0], [_variant_name(v).replace(" (", "\n(") for v in variants], {"target dev": [runs[v] for v in variants]},
          "accuracy (all training data)")
    for v, points in few.items():
        ks = sorted(points)
        axes[1].errorbar(ks, [points[k][0] for k in ks], yerr=[points[k][1] for k in ks], marker="o", capsize=3,
                         label=_variant_name(v))
    axes[1].set(xscale="log", xlabel="training examples per class", ylabel="target dev accuracy (mean ± std)")
    axes[1].legend(fontsize=7)
    methods = list(dict.fromkeys([*zs_dev, *zs_test]))
    _bars(axes[2], methods, {"dev": [zs_dev.get(m, float("nan")) for m in methods],
                             "test": [zs_test.get(m, float("nan")) for m in methods]}, "zero-shot accuracy")
    axes[0].set_title("transfer: new head on the source encoder", fontsize=9)
    axes[1].set_title("few-shot", fontsize=9)
    axes[2].set_title("zero-shot: no target training at all", fontsize=9)
    lines += [f"The baseline's source-task model (20 Newsgroups) gets a new head and is fine-tuned on the target task "
              f"(Reuters R8), against the same architecture trained from scratch; the few-shot runs see k examples "
              f"per class; zero-shot labels a document by the cosine between its mean word vector and the label's "
              f"name. Dev scores come from the half of dev that early stopping did not see. The fine-tuned model "
              f"scores {_fmt(b.m('evaluate/target/test/accuracy'))} accuracy on the target test split.", ""]
    lines += _table(["variant", "target dev accuracy (all data)",
                     *(f"k={k}" for k in sorted({k for p in few.values() for k in p}))],
                    [(_variant_name(v), _fmt(runs[v]), *(_fmt(few.get(v, {}).get(k, (float("nan"),))[0])
                                                        for k in sorted({k for p in few.values() for k in p})))
                     for v in variants])
    lines += _table(["zero-shot", "target dev accuracy", "target test accuracy"],
                    [(m, _fmt(zs_dev.get(m, float("nan"))), _fmt(zs_test.get(m, float("nan")))) for m in methods])
    learnt = {m: v for m, v in zs_test.items() if m != "majority"}
    if learnt and "majority" in zs_test:
        top = max(learnt, key=learnt.get)
        line = (f"The best zero-shot method on the target test split, {top} ({_fmt(learnt[top])}), is "
                f"{'above' if learnt[top] > zs_test['majority'] else 'below'} the majority class "
                f"({_fmt(zs_test['majority'])}).")
        tuned = few.get("pretrained", {})
        if tuned:
            k = min(tuned)
            line += (f" Fine-tuning on k = {k} labelled example{'s' if k > 1 else ''} per class reaches "
                     f"{_fmt(tuned[k][0])} on dev.")
        lines += [line, ""]
    return lines + figs.save(fig, "transfer", [(b, "finetune"), (b, "evaluate")],
                             "Fine-tuned against from-scratch accuracy on the target task, the few-shot curve, and "
                             "zero-shot accuracy against the majority class.")


def multitask(sweep: Sweep, figs: Figures) -> list[str]:
    lines = ["## 9. Multitask learning: one encoder, a head per task", ""]
    if not sweep.ok("multitask"):
        return lines + _missing(sweep, ["multitask"])
    r = sweep["multitask"]
    if math.isnan(r.m("multitask/tasks/target/dev/accuracy")):
        return lines + [f"Not shown: experiment `{r.dvc_name}` recorded no multitask metrics "
                        "(was `multitask.enabled` off?).", ""]
    names = ("single-task", "sequential transfer", "multitask")
    rows = {"target dev accuracy": (r.m("multitask/single_task/dev/accuracy"),
                                    r.m("finetune/runs/pretrained/dev/accuracy"),
                                    r.m("multitask/tasks/target/dev/accuracy")),
            "target test accuracy": (r.m("evaluate/multitask/single_task/test/accuracy"),
                                     r.m("evaluate/target/test/accuracy"),
                                     r.m("evaluate/multitask/tasks/target/test/accuracy"))}
    for k in sorted(int(m.group(1)) for key in r.metrics
                    if (m := re.fullmatch(r"multitask/fewshot/k(\d+)/multitask/accuracy_mean", key))):
        rows[f"target dev accuracy, k={k}"] = (r.m(f"multitask/fewshot/k{k}/single_task/accuracy_mean"),
                                               r.m(f"finetune/fewshot/k{k}/pretrained/accuracy_mean"),
                                               r.m(f"multitask/fewshot/k{k}/multitask/accuracy_mean"))
    plt = _plt()
    fig, ax = plt.subplots(figsize=(9, 4))
    _bars(ax, list(rows), {n: [v[i] for v in rows.values()] for i, n in enumerate(names)}, "accuracy (target task)")
    ax.set_title("single-task vs sequential transfer vs multitask on the target task", fontsize=9)
    lines += [f"Collobert & Weston (2008) share one representation between tasks trained at the same time instead "
              f"of pretraining and then fine-tuning. Experiment `{r.dvc_name}` trains one encoder with a head for "
              f"the source and one for the target task on interleaved one-task batches (the source task drawn for "
              f"{_fmt(r.m('multitask/tasks/source/sampling_probability'), '.0%')} of the batches); single-task is the "
              "same loop on the target task alone; sequential transfer is the finetune stage's model. Dev scores are "
              "on the half of the target dev split that early stopping did not see; few-shot (k examples per "
              "class of the target task; finetune's few-shot mean is over its own seeds) has dev scores only.", ""]
    lines += _table(["target task", *names], [(k, *(_fmt(x) for x in v)) for k, v in rows.items()])
    test = dict(zip(names, rows["target test accuracy"]))
    known = sorted(((v, n) for n, v in test.items() if not math.isnan(v)), reverse=True)
    if len(known) >= 2:
        lines += [f"On the target test split {known[0][1]} wins ({_fmt(known[0][0])}, "
                  f"{known[0][0] - known[1][0]:+.3f} over {known[1][1]}).", ""]
    return lines + figs.save(fig, "multitask", [(r, "multitask"), (r, "evaluate")],
                             "Target-task accuracy of the single-task, sequentially transferred and multitask models.")


LESSONS: tuple[Callable, ...] = (overfitting, regularisers, dropout_batchnorm, gradient_descent, encoders)


def write_report(sweep: Sweep, report: Path, figures: Path) -> None:
    """Write ``report`` (markdown) and its figures under ``figures``."""
    for old in figures.glob("*.png"):
        old.unlink()
    figs = Figures(figures, report)
    commit, dirty = git_commit(sweep.root)
    meta = sweep.meta
    lines = ["# The seminar, demonstrated", "",
             f"One sweep of queued DVC experiments (`make lecture`, size `{sweep.plan.size}`), every number read back "
             f"from MLflow (`{redact(sweep.uri).replace(str(sweep.root), '<repo>')}`). Sweep `{sweep.sweep}` on commit "
             f"`{commit[:10]}`{' (with uncommitted changes)' if dirty else ''}"
             + (f", started {meta['started']}, {meta['seconds'] / 60:.1f} minutes wall time on {meta['cores']} CPU "
                f"cores with {meta['jobs']} experiments at a time (threads each: {meta.get('threads', 'default')})." if meta.get("seconds")
                else "."), ""]
    lines += ["Each experiment is the pipeline (prepare → split → tokenize → embed → train → finetune → evaluate) with "
              "the overrides below, queued on top of the reproduced baseline: a stage whose params and inputs are the "
              "baseline's is not run again. Accuracy is on the source task (20 Newsgroups) unless said otherwise: dev at the epoch "
              "early stopping restored, test from the evaluate stage.", ""]
    base = sweep.plan.experiments[0]
    if sweep.ok(base.name):
        b = sweep[base.name]
        lines += [f"Data: {_fmt(b.m('split/source/train_docs'), ',.0f')} / {_fmt(b.m('split/source/dev_docs'), ',.0f')} / "
                  f"{_fmt(b.m('split/source/test_docs'), ',.0f')} train/dev/test documents of the source task "
                  f"({_fmt(b.m('split/source/classes'), '.0f')} classes), "
                  f"{_fmt(b.m('split/target/train_docs'), ',.0f')} / {_fmt(b.m('split/target/dev_docs'), ',.0f')} / "
                  f"{_fmt(b.m('split/target/test_docs'), ',.0f')} of the target task "
                  f"({_fmt(b.m('split/target/classes'), '.0f')} classes).", ""]
    rows = []
    for r in sweep.results.values():
        # finetune.* differs on purpose: only the baseline runs the full transfer comparison (lesson 8).
        own = {k: v for k, v in r.exp.overrides.items()
               if base.overrides.get(k) != v and not k.startswith("finetune.")}
        rows.append((r.exp.name, f"`{r.dvc_name}`", f"`{r.parent}`" if r.parent else "—", r.status,
                     ", ".join(f"`{k}={_value(v)}`" for k, v in own.items()) or "—", r.exp.title))
    lines += _table(["experiment", "DVC experiment", "MLflow parent run", "status", "differs from baseline", "what"],
                    rows)
    lines += ["Baseline overrides of params.yaml: " + ", ".join(f"`{k}={_value(v)}`" for k, v in base.overrides.items()), ""]
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for lesson in LESSONS:
            lines += lesson(sweep, figs)
        lines += tokenizers(sweep, figs, work)
        lines += word2vec(sweep, figs, work)
        lines += transfer(sweep, figs)
        lines += multitask(sweep, figs)
    report.parent.mkdir(parents=True, exist_ok=True)
    report.write_text("\n".join(lines).rstrip() + "\n", encoding="utf-8")
