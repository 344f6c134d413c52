"""The classic lessons (sections 1-8): regularisation, gradient descent, encoders, tokenizers, word2vec, transfer."""
from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from reprotext.lecture.common import (Figures, _accuracies, _bars, _fmt, _missing, _plt, _source, opening,
                                      _table, beyond_noise, clear, fewshot, fewshot_seeds, full_runs, gain, gain_text,
                                      noise, setting, spread, verdict)
from reprotext.lecture.plan import _value
from reprotext.lecture.sweep import Result, Sweep, download, output_file
from reprotext.tokenizer import UNK, Tokenizer

EXAMPLES = 3  # BPE segmentation examples


def overfitting(sweep: Sweep, figs: Figures) -> list[str]:
    lines = ["## 1. Overfitting and early stopping", ""]
    if not sweep.ok("overfit"):
        return lines + _missing(sweep, ["overfit"])
    r = sweep["overfit"]
    h, best = r.history, int(r.m("train/best_epoch"))
    lines += setting("A model with more parameters than training documents fits the training set ever better while its "
                     "error on held-out data turns and rises; stopping at the held-out minimum and restoring that "
                     "epoch is a regulariser of its own (Prechelt 1998; Goodfellow et al. 2016, section 7.8). The "
                     "setting: a bag of "
                     f"{_fmt(r.m('train/parameters'), ',.0f')} parameters on {_fmt(r.m('split/source/train_docs'), ',.0f')} "
                     "documents, trained with patience as long as the run, so that nothing stops it.")
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
    lines += figs.save(fig, "overfitting", [(r, "train")],
                       "Train and dev loss and accuracy per epoch of a model left to overfit, the epoch early "
                       "stopping picked (dashed), and each layer's weight norm.")
    turned = best < len(h) - 1 and rose and last["train/loss"] < h["train/loss"].iloc[best]
    return lines + verdict(figs, "1. Overfitting and early stopping", bool(turned),
                           f"Dev loss is lowest at epoch {best} of {len(h)} ({_fmt(r.m('train/dev/loss'))}) and ends "
                           f"{_fmt(last['dev/loss'] - r.m('train/dev/loss'), '+.3f')} above it, while train loss keeps "
                           f"falling ({_fmt(h['train/loss'].iloc[best])} to {_fmt(last['train/loss'])})"
                           + ("." if turned else ": the turn the literature describes did not happen in this run."))


def _near_zero(r: Result) -> dict[str, float]:
    row = r.best_row()
    if row is None:
        return {}
    return {c.removeprefix("weights/share_below_"): float(row[c]) for c in row.index
            if c.startswith("weights/share_below_")}


def regularisers(sweep: Sweep, figs: Figures) -> list[str]:
    lines, names = opening(sweep, "## 2. L1 against L2 against none", ("baseline", "l1", "l2"))
    if not names:
        return lines
    rs = [sweep[n] for n in names]
    labels = ["none" if n == "baseline" else n.upper() for n in names]
    lines += setting("An L1 penalty drives weights to exactly zero and so selects features, while an L2 penalty shrinks "
                     "every weight in proportion and zeroes none (Tibshirani 1996; Ng 2004, who shows L1 needing far "
                     "fewer examples when most features are irrelevant, as most pieces are to most topics). The "
                     "setting: the same bag with each penalty on every weight matrix, the embedding table included.")
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
    lines += figs.save(fig, "l1_l2", [(r, "train") for r in rs],
                       "Dev and test accuracy and the share of near-zero weights without a penalty, with L1 and "
                       "with L2.")
    by = dict(zip(labels, shares))
    if not thresholds or "L1" not in by or "L2" not in by:
        return lines + verdict(figs, "2. L1 against L2", None, "The sweep lacks the L1 or the L2 run.")
    t = thresholds[0]
    l1, l2, none = by["L1"].get(t, float("nan")), by["L2"].get(t, float("nan")), by.get("none", {}).get(t, float("nan"))
    if l1 > l2 and l1 > none:
        return lines + verdict(figs, "2. L1 against L2", True,
                               f"L1 leaves {_fmt(l1, '.1%')} of the weights below {t}, against {_fmt(l2, '.1%')} "
                               f"under L2 and {_fmt(none, '.1%')} without a penalty.")
    lr = rs[0].exp.overrides.get("train.lr", float("nan"))
    wide = thresholds[-1]
    return lines + verdict(figs, "2. L1 against L2", False,
                           f"L1 leaves {_fmt(l1, '.1%')} of the weights below {t}, L2 {_fmt(l2, '.1%')}, none "
                           f"{_fmt(none, '.1%')}; below {wide}: L1 {_fmt(by['L1'].get(wide, float('nan')), '.1%')}, "
                           f"L2 {_fmt(by['L2'].get(wide, float('nan')), '.1%')}, none "
                           f"{_fmt(by.get('none', {}).get(wide, float('nan')), '.1%')}. The likely reason is the "
                           "optimiser: AdamW divides each weight's gradient by its own running size (Loshchilov & "
                           "Hutter 2019), so a weight that the data rarely moves (most rows of the embedding table) "
                           f"steps by about the learning rate ({_fmt(lr, 'g')}) under either penalty and oscillates "
                           f"around zero with that amplitude: both penalties gather weights within {_fmt(lr, 'g')} "
                           "of zero, neither holds them at zero. The exact zeros of L1 belong to plain or proximal "
                           "gradient descent.")


def dropout_batchnorm(sweep: Sweep, figs: Figures) -> list[str]:
    lines, names = opening(sweep, "## 3. Dropout, DropConnect and batch norm",
                           ("wide", "dropout", "dropconnect", "batchnorm"), reference="wide")
    if not names:
        return lines
    rs = [sweep[n] for n in names]
    labels = ["all off" if n == "wide" else n for n in names]
    seeds = {n: spread(sweep, n) for n in names}
    lines += setting("Dropout (Srivastava et al. 2014) and DropConnect (Wan et al. 2013) help a network with the "
                     "capacity to overfit: they cost it training accuracy and buy held-out accuracy; batch norm "
                     "(Ioffe & Szegedy 2015) mainly speeds training, with a mild regularising side effect. The "
                     f"setting: the bag under a head with a {rs[0].exp.overrides.get('train.hidden_dim', '?')}-unit "
                     f"hidden layer, on {_fmt(rs[0].m('split/source/train_docs'), ',.0f')} documents (the baseline's "
                     "train loss reaches about 0 when left to run, section 1); dropout and the unregularised head "
                     "each over several seeds, because on this little data the seed alone moves accuracy.")
    gaps = []
    for r in rs:
        row = r.best_row()
        gaps.append((row["train/accuracy"] - row["dev/accuracy"], row["dev/loss"] - row["train/loss"])
                    if row is not None else (float("nan"), float("nan")))
    plt = _plt()
    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    _bars(axes[0], labels, {"dev": [seeds[n].mean("dev") for n in names],
                            "test": [seeds[n].mean("test") for n in names]}, "accuracy (mean over seeds)")
    for i, n in enumerate(names):  # every seed's own score, over its bar
        for offset, split in ((-0.2, "dev"), (0.2, "test")):
            values = getattr(seeds[n], split)
            axes[0].scatter([i + offset] * len(values), values, color="black", s=8, zorder=3)
    _bars(axes[1], labels, {"train - dev accuracy": [g[0] for g in gaps], "dev - train loss": [g[1] for g in gaps]},
          "gap at the restored epoch")
    for label, r in zip(labels, rs):
        axes[2].plot(r.history["epoch"], r.history["dev/loss"], marker="o", ms=3, label=label)
    axes[2].set(xlabel="epoch", ylabel="dev loss")
    axes[2].legend(fontsize=7)
    axes[0].set_title("accuracy of the restored epoch", fontsize=9)
    axes[1].set_title("generalisation gap", fontsize=9)
    rows = [(label, r.exp.title if r.exp.name != "wide" else "the wide head: no dropout, DropConnect or batch norm",
             seeds[r.exp.name].text("dev"), seeds[r.exp.name].text("test"), _fmt(g[0]), _fmt(g[1]),
             _fmt(r.m("train/best_epoch"), ".0f"))
            for label, r, g in zip(labels, rs, gaps)]
    lines += ["Each switch is on alone against the same head with all three off. Accuracy is the mean over the "
              "seeds run (train.seed; its range beside it); the gaps and the restored epoch are the first seed's. "
              "Train accuracy is measured during the epoch, with dropout active; the gap is train minus dev at the "
              "epoch early stopping restored.", ""]
    lines += _table(["setting", "what", "dev accuracy", "test accuracy", "train-dev accuracy gap",
                     "dev-train loss gap", "restored epoch"], rows)
    lines += figs.save(fig, "dropout_batchnorm", [(sweep[n], "train") for r in rs for n in seeds[r.exp.name].names],
                       "Dev and test accuracy (bars: the mean over seeds, dots: each seed), the train/dev gap, and dev "
                       "loss per epoch with dropout, DropConnect or batch norm switched on over a wide head.")
    if "dropout" not in seeds:
        return lines + verdict(figs, "3. Dropout", None, "The sweep lacks the dropout run.")
    off, on = seeds["wide"], seeds["dropout"]
    gain = {split: on.mean(split) - off.mean(split) for split in ("dev", "test")}
    yard = max(off.range("test"), on.range("test")) if min(off.seeds, on.seeds) >= 2 else noise(sweep)
    gap_off, gap_on = gaps[names.index("wide")][0], gaps[names.index("dropout")][0]
    agrees = gain["dev"] > 0 and gain["test"] > 0 and beyond_noise(gain["test"], yard)
    return lines + verdict(
        figs, "3. Dropout", agrees,
        f"Over {min(off.seeds, on.seeds)} seeds dropout moves dev accuracy by {_fmt(gain['dev'], '+.3f')} and test "
        f"accuracy by {_fmt(gain['test'], '+.3f')} (the seed alone moves test accuracy by up to {_fmt(yard)}), and the "
        f"train-dev accuracy gap from {_fmt(gap_off)} to {_fmt(gap_on)}"
        + ("." if agrees else ": within what the seed alone moves, so this run cannot show the gain on held-out data."))


def gradient_descent(sweep: Sweep, figs: Figures) -> list[str]:
    lines, names = opening(sweep, "## 4. Full-batch, stochastic and mini-batch gradient descent",
                           ("full-batch", "sgd", "baseline"))
    if not names:
        return lines
    rs = [sweep[n] for n in names]
    labels = {"full-batch": "full batch (1 step/epoch)", "sgd": "stochastic (batch 1)",
              "baseline": f"mini-batch ({sweep['baseline'].exp.overrides.get('train.batch_size', 32)})"}
    lines += setting("Per pass over the data, stochastic gradient descent makes far more progress than full-batch "
                     "descent, which takes one exact but expensive step per pass (Bottou 2010); mini-batches keep most "
                     "of that progress and compute each example faster, because a batch is one vectorised operation "
                     "(Bottou, Curtis & Nocedal 2018, section 4). The setting: the same model and learning rate, one "
                     "example, a mini-batch, or all documents per step.")
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
    lines += figs.save(fig, "gradient_descent", [(r, "train") for r in rs],
                       "Train (solid) and dev (dashed) loss against wall time and against steps for full-batch, "
                       "stochastic and mini-batch gradient descent.")
    if len(names) < 3:
        return lines + verdict(figs, "4. Gradient descent", None, "The sweep lacks one of the three modes.")
    first = {n: float(sweep[n].history["dev/loss"].iloc[0]) for n in names}  # dev loss after one pass
    per_doc = {n: sweep[n].train.get("fit_seconds", float("nan"))
               / max(sweep[n].m("train/epochs_run") * sweep[n].m("split/source/train_docs"), 1) * 1000 for n in names}
    agrees = first["sgd"] < first["baseline"] < first["full-batch"] and per_doc["baseline"] < per_doc["sgd"]
    return lines + verdict(
        figs, "4. Gradient descent", agrees,
        f"After one pass over the data dev loss is {_fmt(first['sgd'])} (stochastic), {_fmt(first['baseline'])} "
        f"(mini-batch) and {_fmt(first['full-batch'])} (full batch); training costs {_fmt(per_doc['sgd'], '.2f')} ms "
        f"per example one at a time against {_fmt(per_doc['baseline'], '.2f')} ms in mini-batches"
        + ("." if agrees else ": not the order the literature predicts."))


ENCODERS = {"baseline": "bag", "ffnn": "ffnn", "cnn": "cnn", "rnn": "rnn", "transformer": "transformer"}


def encoders(sweep: Sweep, figs: Figures) -> list[str]:
    lines, names = opening(sweep, "## 5. Encoders side by side", ENCODERS)
    if not names:
        return lines
    rs = [sweep[n] for n in names]
    labels = [ENCODERS[n] for n in names]
    lines += setting("On topic classification with little labelled data, a bag of words (or of word n-grams) matches "
                     "convolutional, recurrent and attention encoders at a fraction of their cost (Joulin et al. "
                     "2017; Wang & Manning 2012); the deep encoders pull ahead with hundreds of thousands of "
                     "documents (Zhang, Zhao & LeCun 2015). Bengio et al.'s feed-forward network (2003) was built as "
                     "a language model, so here it starts from one (the `ffnn` experiment pretrains it on the next "
                     "piece after the previous 8, section 10) before it classifies the first pieces of a document. "
                     f"The setting: {_fmt(rs[0].m('split/source/train_docs'), ',.0f')} documents of 20 topics.")
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
    lines += figs.save(fig, "encoders", [(r, "train") for r in rs],
                       "Accuracy, parameter count and training time of the bag, feed-forward, CNN, RNN and "
                       "Transformer encoders.")
    if "ffnn" in names:
        row = sweep["ffnn"].best_row()
        if row is not None:
            lines += [f"The feed-forward network has a weight for every (position, dimension) of its "
                      f"{sweep['ffnn'].exp.overrides.get('train.ffnn.window', '?')} pieces: a word is learnt anew at "
                      f"each position it occurs in. It fits the training set ({_fmt(row['train/accuracy'])} train "
                      f"accuracy at the restored epoch) far better than dev ({_fmt(row['dev/accuracy'])}): as a "
                      "document classifier it memorises; section 10 shows it doing what it was built for.", ""]
    test = {ENCODERS[n]: _accuracies(sweep[n])[1] for n in names}
    seconds = {ENCODERS[n]: sweep[n].train.get("fit_seconds", float("nan")) for n in names}
    best = max(test, key=lambda k: np.nan_to_num(test[k], nan=-1))
    yard = noise(sweep)
    close = best == "bag" or not beyond_noise(test[best] - test["bag"], yard)
    others = {k: v for k, v in test.items() if k != "bag"}
    if best == "bag":
        runner = max(others, key=lambda k: np.nan_to_num(others[k], nan=-1)) if others else "none"
        sentence = (f"The bag has the best test accuracy ({_fmt(test['bag'])}; next the {runner}, "
                    f"{_fmt(others.get(runner, float('nan')))}, with the baseline's seeds moving it by up to "
                    f"{_fmt(yard)}) and the shortest fit ({_fmt(seconds['bag'], '.1f')} s against "
                    + ", ".join(f"{_fmt(seconds[k], '.1f')} s for the {k}" for k in others) + ").")
    else:
        sentence = (f"The bag scores {_fmt(test['bag'])} test accuracy against the {best}'s {_fmt(test[best])} "
                    f"(the baseline's seeds move it by up to {_fmt(yard)}) and fits in {_fmt(seconds['bag'], '.1f')} "
                    f"s against {_fmt(seconds[best], '.1f')} s"
                    + ("." if close else f": at this size the {best} is ahead by more than the seed moves."))
    return lines + verdict(figs, "5. Encoders", close, sentence)


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
    lines += setting("Subword units spell rare and unseen words from known pieces instead of losing them to "
                     "`<unk>` (Sennrich, Haddow & Birch 2016); they help most where many test words are rare, as in "
                     "morphologically rich languages or small vocabularies. The setting: a vocabulary budget of "
                     f"{_fmt(rs['BPE'].m('tokenize/vocab_size'), ',.0f')} for both, small for "
                     f"{_fmt(rs['BPE'].m('split/source/train_docs'), ',.0f')} newsgroup posts full of names and "
                     "addresses, so that the whole-word vocabulary misses many test words.")
    lines += [f"Both tokenizers are trained on the same training text with the same vocabulary budget. On the "
              f"source test split ({n_test:,} words), a word the whole-word vocabulary did not keep becomes `<unk>`: "
              "out of vocabulary, its meaning lost. BPE spells a rare word with smaller pieces, so (with byte fallback "
              "for unseen characters) no word is out of vocabulary; it pays with more tokens per word.", ""]
    lines += _table(["tokenizer", "vocabulary", "test words out of vocabulary", "test words cut into pieces",
                     "tokens per word", "dev accuracy", "test accuracy"], rows)
    lines += figs.save(fig, "bpe_words", [(r, stage) for stage in ("tokenize", "train") for r in rs.values()],
                       "Vocabulary size, out-of-vocabulary rate on the source test split, and accuracy for BPE and "
                       "whole words.")
    diff = _accuracies(rs["BPE"])[1] - _accuracies(rs["whole words"])[1]
    yard = noise(sweep)
    agrees = diff > 0 and beyond_noise(diff, yard)
    unk = stats["whole words"]["oov"]
    rare = _rare_half(sweep, rs, toks["whole words"])
    if rare:
        lines += [f"On the half of the test documents with the most words out of the whole-word vocabulary (at "
                  f"least {_fmt(rare['threshold'], '.1%')} of their words), BPE scores {_fmt(rare['BPE'])} and whole "
                  f"words {_fmt(rare['whole words'])}; on the other half {_fmt(rare['BPE, rest'])} and "
                  f"{_fmt(rare['whole words, rest'])} (source: each experiment's `reports/evaluate/"
                  "source_predictions.csv`).", ""]
    where = (f"; on the half of the test documents with the most unknown words, {_fmt(rare['BPE'] - rare['whole words'], '+.3f')}"
             if rare else "")
    lines += verdict(figs, "6. BPE against whole words", agrees,
                     f"{_fmt(unk, '.1%')} of the test words are out of the whole-word vocabulary and none of BPE's; "
                     f"BPE's test accuracy differs by {_fmt(diff, '+.3f')} (the baseline's seeds move it by up to "
                     f"{_fmt(yard)}){where}"
                     + ("." if agrees else ". The likely reason: a post's topic rests on its frequent words, which "
                        "both vocabularies keep, and a bag that averages pieces cannot put a rare word back together "
                        "from them: the words lost to `<unk>` (names, addresses) carry little of the topic."))
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


def _rare_half(sweep: Sweep, rs: dict[str, Result], words: Tokenizer) -> dict[str, float] | None:
    """Test accuracy of each tokenizer's model on the half of the test documents with the highest share of words
    out of the whole-word vocabulary, and on the other half; None when the predictions are not available."""
    split = output_file(sweep, next(iter(rs.values())), "split", "data/split", "source/test.parquet")
    if split is None:
        return None
    test = pd.read_parquet(split, columns=["text", "label"])
    texts, preds = test["text"].tolist(), {}
    for label, r in rs.items():
        path = output_file(sweep, r, "evaluate", "reports/evaluate", "source_predictions.csv")
        if path is None:
            return None
        preds[label] = pd.read_csv(path, dtype=str)
        if preds[label]["actual"].tolist() != test["label"].astype(str).tolist():  # not this test split, in order
            return None
    share = np.array([np.mean([UNK in ids for ids in words.encode(t.split())]) if t.split() else 0.0 for t in texts])
    threshold = float(np.median(share))
    high = share >= threshold
    out = {"threshold": threshold}
    for label, p in preds.items():
        right = (p["actual"] == p["predicted"]).to_numpy()
        out[label], out[f"{label}, rest"] = float(right[high].mean()), float(right[~high].mean())
    return out


def _neighbours(sweep: Sweep, r: Result, work: Path) -> dict | None:
    path = download(sweep, r.runs.get("embed", ""), "report/intrinsic.json", work / f"{r.exp.name}-embed")
    return json.loads(path.read_text()) if path else None


def word2vec(sweep: Sweep, figs: Figures, work: Path) -> list[str]:
    lines = ["## 7. word2vec", ""]
    if not sweep.ok("baseline"):
        return lines + _missing(sweep, ["baseline"])
    b = sweep["baseline"]
    lines += setting("Skip-gram and CBOW place words that share contexts near each other (Mikolov et al. 2013; "
                     "skip-gram is the better of the two for rare words). Vectors learnt from unlabelled text help a "
                     "classifier most when labelled examples are few (Turian, Ratinov & Bengio 2010; Kim 2014: "
                     "pretrained vectors beat random ones most on the smallest datasets). The setting: word2vec over "
                     "the training text of both tasks, and the classifier from word2vec or random vectors with all "
                     "its labels and with k labelled documents per class.")
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
        rho = {s: (b.m(f"embed/{s}/spearman"), c.m(f"embed/{s}/spearman")) for s in sims}
        ahead = bool(rho) and all(sg > cb for sg, cb in rho.values())
        lines += verdict(figs, "7. Skip-gram against CBOW", ahead,
                         "Spearman ρ with human similarity ratings, skip-gram against CBOW: "
                         + ", ".join(f"{_fmt(sg)} against {_fmt(cb)} ({s})" for s, (sg, cb) in rho.items())
                         + (", as Mikolov et al. (2013) found for semantic similarity." if ahead else
                            ": not the order Mikolov et al. (2013) found; with this little text neither set of "
                            "vectors is far from chance (ρ near 0)."))
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
    few, full = fewshot(b), full_runs(b)
    w2v, rnd = few.get("scratch_train_init", {}), few.get("scratch_random", {})
    ks = sorted(set(w2v) & set(rnd))
    if not ks or "scratch_train_init" not in full or "scratch_random" not in full:
        return lines + verdict(figs, "7. word2vec initialisation", None,
                               "The baseline's finetune study lacks the word2vec-initialised or the random scratch runs.")
    lines += ["### With few labels", "",
              "The same comparison on the target task, where the finetune stage trains the model from scratch "
              f"from word2vec or from random vectors, on all its training documents and on k per class "
              f"(mean ± std over {fewshot_seeds(b)} seeds; target dev accuracy):", ""]
    lines += _table(["embedding init", "all data", *(f"k={k}" for k in ks)],
                    [(name, _fmt(full[v]), *(f"{_fmt(curve[k][0])} ± {_fmt(curve[k][1])}" for k in ks))
                     for name, v, curve in (("word2vec", "scratch_train_init", w2v), ("random", "scratch_random", rnd))])
    n = fewshot_seeds(b)
    gains = {k: gain(w2v[k], rnd[k], n) for k in ks}
    gain_all = full["scratch_train_init"] - full["scratch_random"]
    k = ks[0]
    agrees = clear(gains[k]) and gains[k][0] > gain_all
    return lines + verdict(
        figs, "7. word2vec initialisation", agrees,
        "word2vec vectors (trained on the unlabelled text of both tasks) against random ones, target dev accuracy "
        f"(mean difference ± its standard error over {n} seeds): " + ", ".join(gain_text(gains[j], j) for j in ks)
        + f", against {_fmt(gain_all, '+.3f')} with all the training data: "
        + ("they help most where labels are fewest, as Turian, Ratinov & Bengio (2010) and Kim (2014) found."
           if agrees else "not clearly the pattern of Turian, Ratinov & Bengio (2010): with this little "
           "unlabelled text the vectors carry little that the labelled documents do not."))


def _variant_name(v: str) -> str:
    return {"pretrained": "fine-tuned (source encoder)", "scratch_train_init": "scratch (train's init)",
            "scratch_random": "scratch (random init)"}.get(v, v)


def transfer(sweep: Sweep, figs: Figures) -> list[str]:
    lines = ["## 8. Transfer learning, few-shot and zero-shot", ""]
    if not sweep.ok("baseline"):
        return lines + _missing(sweep, ["baseline"])
    b = sweep["baseline"]
    runs, few = full_runs(b), fewshot(b)
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
    lines += setting("A model trained on a source task and fine-tuned on the target needs fewer target labels than one "
                     "trained from scratch (Howard & Ruder 2018); the gain is largest with few labels and shrinks as "
                     "labels grow, and between tasks unlike each other it can vanish (Yosinski et al. 2014; Mou et al. "
                     "2016 found little transfer between semantically different NLP tasks). Zero-shot classification "
                     "by the similarity of a document to a few words describing each label beats chance without any "
                     "labelled example (Chang et al. 2008, dataless classification). The setting: 20 Newsgroups "
                     "(source) to Reuters R8 (target), with k labelled documents per class over "
                     f"{fewshot_seeds(b)} seeds.")
    lines += [f"The baseline's source-task model (20 Newsgroups) gets a new head and is fine-tuned on the target task "
              f"(Reuters R8), against the same architecture trained from scratch; the few-shot runs see k examples "
              f"per class; zero-shot labels a document by the cosine between its vector and those of a few words "
              f"describing each label. Dev scores come from the half of dev that early stopping did not see. The fine-tuned model "
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
    lines += figs.save(fig, "transfer", [(b, "finetune"), (b, "evaluate")],
                       "Fine-tuned against from-scratch accuracy on the target task, the few-shot curve, and "
                       "zero-shot accuracy against the majority class.")
    tuned, scratch = few.get("pretrained", {}), few.get("scratch_train_init", {})
    ks = sorted(set(tuned) & set(scratch))
    if ks:
        n = fewshot_seeds(b)
        gains = {k: gain(tuned[k], scratch[k], n) for k in ks}
        agrees = all(clear(gains[k]) for k in ks)
        lines += verdict(figs, "8. Transfer from the source task", agrees,
                         "The fine-tuned source model against the same model from scratch (word2vec init), target "
                         f"dev accuracy (mean difference ± its standard error over {n} seeds): "
                         + ", ".join(gain_text(gains[k], k) for k in ks)
                         + (f", {_fmt(runs['pretrained'] - runs['scratch_train_init'], '+.3f')} with all data"
                            if "pretrained" in runs and "scratch_train_init" in runs else "")
                         + ("." if agrees else
                            ". The likely reason is the distance between the tasks (Mou et al. 2016): training on newsgroup "
                            "topics did not bring the representation nearer to the newswire categories"
                            + (f" (zero-shot, the source encoder places target test documents by their label "
                               f"descriptions at {_fmt(zs_test['source_encoder'])} accuracy, word2vec at "
                               f"{_fmt(zs_test['word2vec'])})" if {"source_encoder", "word2vec"} <= set(zs_test) else "")
                            + "."))
    else:
        lines += verdict(figs, "8. Transfer from the source task", None,
                         "The baseline's finetune study lacks the fine-tuned or the scratch few-shot runs.")
    majority = zs_test.get("majority")
    f1 = {m.group(1): v for key, v in b.metrics.items()
          if (m := re.fullmatch(r"evaluate/target/zeroshot/([^/]+)/macro_f1", key))}
    if learnt and majority is not None:
        top = max(learnt, key=learnt.get)
        agrees = learnt[top] > majority and f1.get(top, 0) > f1.get("majority", 1)
        lines += verdict(figs, "8. Zero-shot", agrees,
                         f"The best zero-shot method, {top}, scores {_fmt(learnt[top])} test accuracy and "
                         f"{_fmt(f1.get(top, float('nan')))} macro-F1 against the majority class's {_fmt(majority)} and "
                         f"{_fmt(f1.get('majority', float('nan')))}"
                         + ("." if agrees else ": label words alone do not separate these classes here."))
    return lines


