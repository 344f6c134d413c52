"""reports/report.md: the test-set results, the transfer comparison, few-shot and zero-shot, in one readable page."""
from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from reprotext import retrieval
from reprotext.multitask import report as multitask_report

COLUMNS = ("accuracy", "macro_f1", "micro_f1", "weighted_f1", "ece")


def _fmt(value: Any, digits: int = 3) -> str:
    return "–" if value is None or (isinstance(value, float) and value != value) else f"{value:.{digits}f}"


def _link(target: Path, base: Path) -> str:
    return Path(os.path.relpath(target, base)).as_posix()


def results_table(rows: Mapping[str, Mapping[str, float]]) -> list[str]:
    """A markdown table: one row per method, the COLUMNS it has."""
    lines = ["| method | " + " | ".join(c.replace("_", "-") for c in COLUMNS) + " |",
             "|---|" + "---:|" * len(COLUMNS)]
    for name, m in rows.items():
        lines.append(f"| {name} | " + " | ".join(_fmt(m.get(c)) for c in COLUMNS) + " |")
    return lines


def fewshot_table(summary: pd.DataFrame) -> list[str]:
    """k down the side, one column per variant: dev accuracy mean ± std (and the number of seeds)."""
    variants = list(dict.fromkeys(summary["variant"]))
    lines = ["| k per class | " + " | ".join(variants) + " |", "|---|" + "---:|" * len(variants)]
    for k in dict.fromkeys(summary["k"]):
        part = summary[summary["k"] == k].set_index("variant")
        cells = []
        for v in variants:
            if v in part.index:
                r = part.loc[v]
                spread = f" ± {r['accuracy_std']:.3f}" if int(r["seeds"]) > 1 else " (1 run)"
                cells.append(f"{r['accuracy_mean']:.3f}{spread}")
            else:
                cells.append("–")
        lines.append(f"| {k} | " + " | ".join(cells) + " |")
    return lines


def per_class_table(frame: pd.DataFrame) -> list[str]:
    lines = ["| label | precision | recall | F1 | support |", "|---|---:|---:|---:|---:|"]
    for r in frame.itertuples():
        lines.append(f"| {r.label} | {r.precision:.3f} | {r.recall:.3f} | {r.f1:.3f} | {r.support} |")
    return lines


def write_report(path: Path, evaluate: Mapping[str, Any], finetune: Mapping[str, Any], fewshot: pd.DataFrame,
                 per_class: Mapping[str, pd.DataFrame], figures: Mapping[str, Path], k_claim: int = 10,
                 multitask: Mapping[str, Any] | None = None) -> None:
    """Write the markdown report to ``path``; ``figures`` maps a name to a file, linked relative to the report.

    ``multitask`` (the multitask stage's dev metrics under ``dev``, the evaluate stage's test scores under
    ``test``, finetune's per-run few-shot rows under ``finetune_rows``) adds the multitask comparison.
    """
    base = path.parent
    fig = {name: _link(p, base) for name, p in figures.items()}
    src, tgt = evaluate["source"], evaluate["target"]
    runs = finetune["runs"]
    scratch = [v for v in runs if v != "pretrained"]
    lines = ["# reprotext report", "",
             "Everything below is recomputed by `dvc repro`; test-split numbers come from the evaluate stage "
             "(the only stage that reads test), transfer, few-shot and zero-shot model selection from the finetune "
             "stage on the target dev split.", "",
             "## Headline", "",
             f"- Source task (train model): test accuracy **{src['test']['accuracy']:.3f}**, macro-F1 "
             f"{src['test']['macro_f1']:.3f} on {src['test_docs']} documents.",
             f"- Target task (fine-tuned model): test accuracy **{tgt['test']['accuracy']:.3f}**, macro-F1 "
             f"{tgt['test']['macro_f1']:.3f} on {tgt['test_docs']} documents."]
    for v in scratch:
        lines.append(f"- Transfer gain over `{v}` (target dev, all training data): accuracy "
                     f"{finetune['transfer_gain'][f'{v}.accuracy']:+.3f}, macro-F1 "
                     f"{finetune['transfer_gain'][f'{v}.macro_f1']:+.3f}; epochs to the best dev loss: "
                     f"{runs['pretrained']['epochs_to_best']} (fine-tuned) vs {runs[v]['epochs_to_best']}.")
    numeric = fewshot[(fewshot["k"] != "all")]
    small = numeric[numeric["k"].astype(int) <= k_claim]
    verdicts = []
    for v in scratch:
        wins = []
        for k in dict.fromkeys(small["k"]):
            part = small[small["k"] == k].set_index("variant")
            if "pretrained" in part.index and v in part.index:
                wins.append(part.loc["pretrained", "accuracy_mean"] > part.loc[v, "accuracy_mean"])
        if wins:
            verdicts.append(f"`{v}` at {sum(wins)} of {len(wins)} values of k <= {k_claim}")
    if verdicts:
        lines.append("- Few-shot: the fine-tuned model has the higher mean dev accuracy than " + "; than ".join(verdicts)
                     + " (table below).")
    zs = tgt.get("zeroshot", {})
    if zs:
        best = max((m for m in zs if m != "majority"), key=lambda m: zs[m]["macro_f1"])
        lines.append(f"- Zero-shot ({best.replace('_', ' ')} vectors, target test): accuracy {zs[best]['accuracy']:.3f}, "
                     f"macro-F1 {zs[best]['macro_f1']:.3f}, against the majority class's "
                     f"{zs['majority']['accuracy']:.3f} / {zs['majority']['macro_f1']:.3f}.")
    retrieval_headline, retrieval_section = retrieval.report_lines(evaluate, finetune, fig)
    lines += retrieval_headline
    multitask_headline, multitask_section = [], []
    if multitask is not None:
        multitask_headline, multitask_section = multitask_report.lines(
            multitask, evaluate, finetune, multitask["finetune_rows"], fig.get("multitask_history"))
    lines += multitask_headline
    for role, title, m in (("source", "Source task (test split)", src), ("target", "Target task (test split)", tgt)):
        rows = {f"{m['model']} model": m["test"], **{f"baseline: {k.replace('_', ' ')}": b
                                                       for k, b in m.get("baselines", {}).items()}}
        if role == "target":
            rows.update({f"zero-shot: {k.replace('_', ' ')}": z for k, z in m.get("zeroshot", {}).items()
                         if k != "majority"})
        lines += ["", f"## {title}", "", *results_table(rows), "",
                  "ECE: expected calibration error of the max-class probability (15 equal-width bins unless set "
                  "otherwise); micro-F1 equals accuracy for single-label data.", "",
                  f"![{role} confusion matrix]({fig[f'{role}_confusion']}) "
                  f"![{role} reliability diagram]({fig[f'{role}_reliability']})", "",
                  f"Per class ({m['model']} model):", "", *per_class_table(per_class[role])]
    lines += ["", "## Transfer: fine-tuned vs from scratch (target dev, all training data)", "",
              "| run | dev accuracy | dev macro-F1 | best epoch (0-based) | epochs run |", "|---|---:|---:|---:|---:|"]
    for v, r in runs.items():
        lines.append(f"| {v} | {r['dev']['accuracy']:.3f} | {r['dev']['macro_f1']:.3f} | {r['best_epoch']} | "
                     f"{r['epochs_run']} |")
    lines += ["", f"![dev loss and accuracy per epoch]({fig['transfer']})", "",
              f"![fine-tuning history]({fig['finetune_history']})", "",
              "## Few-shot learning curve (target dev accuracy, mean ± std over seeds)", "",
              *fewshot_table(fewshot), "", f"![few-shot curve]({fig['fewshot']})", ""]
    zs_dev = finetune.get("zeroshot", {}).get("dev", {})
    if zs_dev:
        lines += ["## Zero-shot (target dev split)", "", *results_table(zs_dev), "",
                  "Label descriptions: " + ", ".join(f"`{k}` → “{v}”" for k, v in
                                                    finetune["zeroshot"]["descriptions"].items()), ""]
    lines += retrieval_section
    lines += multitask_section
    lines += ["## How these numbers were made", "",
              "- Splits: stratified 70/20/10 train/dev/test per task (the split stage). Test is read only here.",
              "- Fine-tuning: the source model's encoder under a new head; the head trains alone for the warm-up "
              "epochs, then the encoder's layer groups thaw from the top, with a smaller learning rate "
              "(finetune.encoder_lr_factor x the head's).",
              f"- From scratch: the same architecture, recipe (schedule, learning rates) and epoch budget. "
              f"`scratch_train_init` starts from the embeddings the train stage started from "
              f"(here: {finetune.get('scratch_init', 'pretrained')}, i.e. "
              f"{'word2vec vectors' if finetune.get('scratch_init') == 'pretrained' else 'random'}), so its gap to "
              "`pretrained` is what the source-task training added; `scratch_random` starts from random embeddings.",
              f"- Dev split: one stratified half ({finetune.get('dev_stop_docs')} documents) selects the epoch (early "
              f"stopping on dev loss), the other half ({finetune.get('dev_score_docs')}) gives the dev scores above, "
              "so no reported dev score was selected on.",
              "- Few-shot: k training examples per class (all of a class when it has fewer), drawn per seed; every "
              "variant gets the same examples for a seed.",
              "- Zero-shot: cosine between a document's mean piece embedding and the mean piece embedding of each "
              "label's description, both centred on the mean of the documents; no labelled target data is used.",
              "- Baselines: the majority class of the training split; TF-IDF (word uni- and bigrams) + logistic "
              "regression fit on the training split."]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
