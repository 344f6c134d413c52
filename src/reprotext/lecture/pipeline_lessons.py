"""The lessons of what the pipeline newly does: language-model pretraining, n-gram features, multitask, retrieval."""
from __future__ import annotations

import math
import re

from reprotext.lecture.common import (Figures, _bars, _fmt, _missing, _plt, _table, beyond_noise, clear, fewshot,
                                      fewshot_seeds, full_runs, gain, gain_text, noise, setting, spread, verdict)
from reprotext.lecture.sweep import Result, Sweep

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
    lines += setting("Training related tasks together through one shared representation improves the task with "
                     "less data (Caruana 1997; Collobert & Weston 2008); with enough data of its own, or tasks that "
                     "compete for a small shared encoder, the target task can lose (negative transfer; Ruder 2017, "
                     "section 3). The setting: 20 Newsgroups and Reuters R8 through one bag encoder, with all the "
                     "target's labels and with k per class.")
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
    lines += figs.save(fig, "multitask", [(r, "multitask"), (r, "evaluate")],
                       "Target-task accuracy of the single-task, sequentially transferred and multitask models.")
    few = [k for k in rows if k.startswith("target dev accuracy, k=")]
    if not few:
        return lines + verdict(figs, "9. Multitask", None, "The multitask stage ran no few-shot comparison.")
    single, multi = rows[few[0]][0], rows[few[0]][2]
    k = few[0].removeprefix("target dev accuracy, k=")
    seeds = int(r.m(f"multitask/fewshot/k{k}/multitask/seeds", 1))
    std = max(r.m(f"multitask/fewshot/k{k}/{v}/accuracy_std", 0.0) for v in ("multitask", "single_task"))
    test_gain = rows["target test accuracy"][2] - rows["target test accuracy"][0]
    diff = gain((multi, r.m(f"multitask/fewshot/k{k}/multitask/accuracy_std", 0.0)),
                (single, r.m(f"multitask/fewshot/k{k}/single_task/accuracy_std", 0.0)), seeds)
    agrees = clear(diff) if seeds > 1 else multi > single
    return lines + verdict(
        figs, "9. Multitask", agrees,
        f"At k = {k} the multitask model scores {_fmt(multi)} against single-task {_fmt(single)} "
        + (f"({gain_text(diff, k).removesuffix(f' at k = {k}')}, the mean difference ± its standard error over "
           f"{seeds} seeds; std up to {_fmt(std)})" if seeds > 1 else f"({_fmt(multi - single, '+.3f')}, one seed)")
        + f", and {_fmt(test_gain, '+.3f')} on the test split with all the target's labels"
        + (": sharing helps the task short of labels." if agrees else
           (": the mean favours multitask, but within its standard error: this many seeds cannot separate them."
            if multi > single else
            ": sharing did not help the task short of labels in this run; the likely reason is the "
            f"{_fmt(r.m('multitask/tasks/source/sampling_probability'), '.0%')} of batches spent on the source "
            "task within the same step budget, which a target with few examples cannot use.")))




def _perplexities(r: Result) -> list[float]:
    """The pretrain stage's dev perplexity after each of its epochs."""
    points = {int(m.group(1)): v for k, v in r.metrics.items()
              if (m := re.fullmatch(r"pretrain/dev_perplexity_by_epoch/(\d+)", k))}
    return [points[e] for e in sorted(points)]


WIKITEXT103 = 103e6  # tokens of ULMFiT's pretraining corpus (Howard & Ruder 2018)
LM_VARIANTS = {"scratch_random": "random init", "scratch_train_init": "word2vec init",
               "lm_pretrained": "language model", "pretrained": "language model, then the source task"}


def pretraining(sweep: Sweep, figs: Figures) -> list[str]:
    lines = ["## 10. Language-model pretraining", ""]
    names = [n for n in ("lm", "ffnn") if sweep.ok(n) and _perplexities(sweep[n])]
    if "lm" not in names:
        return lines + _missing(sweep, ["lm"])
    lm = sweep["lm"]
    lines += setting("A language model learns from unlabelled text alone: Bengio et al.'s feed-forward network "
                     "(2003) predicts the next word from the previous n and beats count-based models in perplexity; "
                     "a Transformer trained to fill in masked pieces (Devlin et al. 2019) learns context-dependent "
                     "representations. An encoder pretrained that way and fine-tuned needs far fewer labels than "
                     "one trained from scratch (Dai & Le 2015; Howard & Ruder 2018), and the gain is largest with "
                     "the fewest labels. The setting: both language models on the training text of both tasks "
                     f"({_fmt(lm.m('pretrain/train_tokens'), ',.0f')} training tokens, dev text for perplexity), "
                     "then the Transformer on the target task with k labelled documents per class over "
                     f"{fewshot_seeds(lm)} seeds, against the same Transformer from word2vec or random vectors.")
    plt = _plt()
    fig, (left, right) = plt.subplots(1, 2, figsize=(13, 4.2))
    rows = []
    for n in names:
        r = sweep[n]
        ppl = _perplexities(r)
        unigram = r.m("pretrain/dev/unigram_perplexity")
        label = f"{r.m('pretrain/model') if 'pretrain/model' in r.metrics else r.exp.overrides.get('train.model')}"
        line, = left.plot(range(1, len(ppl) + 1), ppl, marker="o", ms=3, label=f"{label} ({n})")
        left.axhline(unigram, color=line.get_color(), ls=":", label=f"unigram model ({n} dev pieces)")
        rows.append((f"`{n}`", r.exp.overrides.get("train.model", "?"), " → ".join(_fmt(p, ".0f") for p in ppl),
                     _fmt(unigram, ".0f"), _fmt(r.m("pretrain/steps"), ",.0f")))
    left.set(xlabel="pretraining epoch", ylabel="dev perplexity", yscale="log")
    left.legend(fontsize=7)
    few = fewshot(lm)
    for v, label in LM_VARIANTS.items():
        points = few.get(v, {})
        if points:
            ks = sorted(points)
            right.errorbar(ks, [points[k][0] for k in ks], yerr=[points[k][1] for k in ks], marker="o", capsize=3,
                           label=label)
    right.set(xscale="log", xlabel="labelled target documents per class",
              ylabel=f"target dev accuracy (mean ± std, {fewshot_seeds(lm)} seeds)")
    right.legend(fontsize=7)
    lines += _table(["experiment", "encoder", "dev perplexity per epoch", "unigram perplexity", "steps"], rows)
    ks = sorted({k for p in few.values() for k in p})
    full = full_runs(lm)
    lines += _table(["Transformer initialised from", "all data", *(f"k={k}" for k in ks)],
                    [(label, _fmt(full.get(v, float("nan"))),
                      *(f"{_fmt(few[v][k][0])} ± {_fmt(few[v][k][1])}" if k in few.get(v, {}) else "n/a" for k in ks))
                     for v, label in LM_VARIANTS.items() if v in few or v in full])
    lines += figs.save(fig, "pretraining", [(sweep[n], "pretrain") for n in names] + [(lm, "finetune")],
                       "Dev perplexity per pretraining epoch against a unigram model, and the few-shot curve of the "
                       "Transformer from random, word2vec and language-model initialisation.")
    falls = all(all(b < a for a, b in zip(_perplexities(sweep[n]), _perplexities(sweep[n])[1:]))
                and _perplexities(sweep[n])[-1] < sweep[n].m("pretrain/dev/unigram_perplexity") for n in names)
    lines += verdict(figs, "10. Language models learn from unlabelled text", falls,
                     "Dev perplexity " + "; ".join(f"of `{n}` falls from {_fmt(_perplexities(sweep[n])[0], '.0f')} to "
                                                   f"{_fmt(_perplexities(sweep[n])[-1], '.0f')} against the unigram "
                                                   f"model's {_fmt(sweep[n].m('pretrain/dev/unigram_perplexity'), '.0f')}"
                                                   for n in names)
                     + ("." if falls else ": not every epoch lowered it, or it stayed above the unigram model."))
    pre, w2v = few.get("lm_pretrained", {}), few.get("scratch_train_init", {})
    common = sorted(set(pre) & set(w2v))
    if not common:
        return lines + verdict(figs, "10. Pretraining pays with few labels", None,
                               "The lm experiment's finetune study lacks the language-model or word2vec few-shot runs.")
    n = fewshot_seeds(lm)
    gains = {k: gain(pre[k], w2v[k], n) for k in common}
    unclear = [k for k in common if not clear(gains[k])]
    why = ""
    if unclear:
        noisy = max(w2v[k][1] for k in unclear) >= max(pre[k][1] for k in unclear)
        why = (f": not clearly at k = {', '.join(map(str, unclear))}, where the difference is within its standard "
               f"error over {n} seeds. The likely reason: "
               + (f"the Transformer from word2vec is unstable on so few documents (its accuracy varies by a std of "
                  f"up to {_fmt(max(w2v[k][1] for k in unclear))} over seeds)." if noisy else
                  f"the language model's budget, {_fmt(lm.m('pretrain/train_tokens'), ',.0f')} tokens, "
                  f"{_fmt(lm.m('pretrain/train_tokens') / WIKITEXT103, '.1%')} of the 103 million that ULMFiT's "
                  "language model read."))
    return lines + verdict(
        figs, "10. Pretraining pays with few labels", not unclear,
        "The language-model-pretrained Transformer against the same one from word2vec (mean difference ± its "
        f"standard error over {n} seeds): " + ", ".join(gain_text(gains[k], k) for k in common) + (why or "."))


NGRAMS = {"baseline": "mean of the pieces", "tfidf": "TF-IDF-weighted pieces", "ngrams": "TF-IDF over pieces, words "
          "and word bigrams"}


def ngrams(sweep: Sweep, figs: Figures) -> list[str]:
    lines = ["## 11. n-gram features and term weighting", ""]
    names = [n for n in NGRAMS if sweep.ok(n)]
    if "baseline" not in names or len(names) < 2:
        return lines + _missing(sweep, list(NGRAMS))
    lines += setting("Weighting a term by how rare it is across documents (TF-IDF; Salton & Buckley 1988) and adding "
                     "word bigrams, which keep some word order, make a bag classifier markedly stronger: fastText's "
                     "bigrams gain one to four points on text classification benchmarks (Joulin et al. 2017), and "
                     "bigram models are the strong baselines of Wang & Manning (2012). The setting: the baseline's "
                     "bag, then TF-IDF pooling, then TF-IDF over words and word bigrams too (a table row per n-gram "
                     "seen in at least two training documents, updated sparsely).")
    spreads = {n: spread(sweep, n) for n in names}
    plt = _plt()
    fig, ax = plt.subplots(figsize=(9, 4))
    labels = [NGRAMS[n] for n in names]
    _bars(ax, [label.replace(", ", ",\n") for label in labels], {"dev": [spreads[n].mean("dev") for n in names],
                                                                 "test": [spreads[n].mean("test") for n in names]},
          "accuracy")
    ax.set_title("the bag with term weighting and word n-grams", fontsize=9)
    lines += _table(["bag", "dev accuracy", "test accuracy", "parameters", "fit seconds"],
                    [(NGRAMS[n], spreads[n].text("dev"), spreads[n].text("test"),
                      _fmt(sweep[n].m("train/parameters"), ",.0f"),
                      _fmt(sweep[n].train.get("fit_seconds", float("nan")), ".1f")) for n in names])
    lines += figs.save(fig, "ngrams", [(sweep[n], "train") for n in names],
                       "Dev and test accuracy of the bag with mean pooling, TF-IDF pooling, and TF-IDF over words and "
                       "word bigrams as well.")
    last = names[-1]
    gain = spreads[last].mean("test") - spreads["baseline"].mean("test")
    yard = noise(sweep)
    agrees = gain > 0 and beyond_noise(gain, yard)
    between = "".join(f"{NGRAMS[n]} alone: {_fmt(spreads[n].mean('test') - spreads['baseline'].mean('test'), '+.3f')}; "
                      for n in names[1:-1])
    return lines + verdict(
        figs, "11. n-grams and TF-IDF", agrees,
        f"{NGRAMS[last][0].upper() + NGRAMS[last][1:]} moves test accuracy by {_fmt(gain, '+.3f')} over the mean of "
        f"the pieces ({between}the baseline's seeds move it by up to {_fmt(yard)})"
        + ("." if agrees else ": within what the seed alone moves."))


RETRIEVAL = {"bm25": "BM25", "tfidf_cosine": "TF-IDF cosine", "word2vec": "mean word2vec",
             "trained_encoder": "the trained classifier's encoder", "dual_encoder": "dual encoder (DSSM-style)"}


def retrieval(sweep: Sweep, figs: Figures) -> list[str]:
    lines = ["## 12. Retrieval: a dual encoder against BM25", ""]
    r = sweep["multitask"] if sweep.ok("multitask") else None
    key = "evaluate/{task}/retrieval/methods/{method}/{metric}"
    if r is None or math.isnan(r.m(key.format(task="source", method="bm25", metric="map_at_100"))):
        return lines + _missing(sweep, ["multitask"]) if r is None else lines + [
            f"Not shown: experiment `{r.dvc_name}` recorded no retrieval metrics (was `evaluate.retrieval` off?).", ""]
    lines += setting("A dual encoder trained on pairs of related texts (DSSM: Huang et al. 2013; DPR: Karpukhin et al. "
                     "2020) retrieves better than BM25 inside the domain it was trained on, while BM25 stays the "
                     "stronger choice on domains the encoder never saw (Thakur et al. 2021, BEIR). The setting: "
                     "in-domain query by example: each test document queries the training documents of its task, "
                     "and documents of its label are the relevant ones; the dual encoder is fine-tuned from the "
                     "classifier's encoder on same-label pairs with in-batch negatives, so it is trained for exactly "
                     "this notion of relevance, while BM25 only counts shared words.")
    methods = [m for m in RETRIEVAL if not math.isnan(r.m(key.format(task="source", method=m, metric="map_at_100")))]
    tasks = [t for t in ("source", "target") if not math.isnan(r.m(key.format(task=t, method="bm25",
                                                                               metric="map_at_100")))]
    plt = _plt()
    fig, ax = plt.subplots(figsize=(10, 4))
    _bars(ax, [RETRIEVAL[m].replace(" (", "\n(") for m in methods],
          {t: [r.m(key.format(task=t, method=m, metric="map_at_100")) for m in methods] for t in tasks}, "mAP@100")
    ax.set_title("query by example on the test split: same label = relevant", fontsize=9)
    lines += _table(["method", *(f"{t} mAP@100" for t in tasks), *(f"{t} P@10" for t in tasks)],
                    [(RETRIEVAL[m], *(_fmt(r.m(key.format(task=t, method=m, metric="map_at_100"))) for t in tasks),
                      *(_fmt(r.m(key.format(task=t, method=m, metric="precision_at_10"))) for t in tasks))
                     for m in methods])
    lines += figs.save(fig, "retrieval", [(r, "finetune"), (r, "evaluate")],
                       "mAP@100 of query-by-example retrieval with BM25, TF-IDF, word2vec, the classifier's encoder "
                       "and the dual encoder.")
    dual = {t: r.m(key.format(task=t, method="dual_encoder", metric="map_at_100")) for t in tasks}
    bm25 = {t: r.m(key.format(task=t, method="bm25", metric="map_at_100")) for t in tasks}
    if any(math.isnan(v) for v in dual.values()):
        return lines + verdict(figs, "12. Retrieval", None, "The dual encoder was not trained in this experiment.")
    agrees = all(dual[t] > bm25[t] for t in tasks)
    return lines + verdict(
        figs, "12. Retrieval", agrees,
        "mAP@100 of the dual encoder against BM25: " + ", ".join(f"{_fmt(dual[t])} against {_fmt(bm25[t])} ({t})"
                                                                for t in tasks)
        + ("." if agrees else ": BM25 holds its own here."))
