"""The report's multitask section: on the target task, single-task against sequential transfer against multitask,
with all training data (dev and test) and with few labels (dev)."""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd

SINGLE, SEQUENTIAL, MULTI = "single-task (scratch)", "sequential transfer (fine-tuned)", "multitask"


def _fmt(value: float | None) -> str:
    return "–" if value is None or value != value else f"{value:.3f}"


def finetune_fewshot(rows: pd.DataFrame, ks: list[int], seeds: list[int]) -> dict[int, dict[str, float]]:
    """finetune's fine-tuned (``pretrained``) few-shot dev scores at each k, averaged over ``seeds`` only.

    ``rows``: finetune's per-run few-shot rows (``k``, ``variant``, ``seed``, ``accuracy``, ``macro_f1``).
    The same seeds draw the same k examples per class as the multitask stage's, so the means compare.
    """
    out = {}
    for k in ks:
        part = rows[(rows["k"].astype(str) == str(k)) & (rows["variant"] == "pretrained") & rows["seed"].isin(seeds)]
        if len(part) == len(seeds):
            out[k] = {"accuracy": float(part["accuracy"].mean()), "macro_f1": float(part["macro_f1"].mean())}
    return out


def comparison(multitask: Mapping[str, Any], evaluate: Mapping[str, Any], finetune: Mapping[str, Any],
               finetune_rows: pd.DataFrame) -> dict[str, dict[str, float | None]]:
    """Setting -> {single-task, sequential, multitask} scores of the target task (None where not measured)."""
    dev, test = multitask["dev"], multitask["test"]
    single_dev = dev.get("single_task", {}).get("dev", {})
    single_test = test.get("single_task", {}).get("test", {})
    seq_dev, seq_test = finetune["runs"]["pretrained"]["dev"], evaluate["target"]["test"]
    mt_dev, mt_test = dev["tasks"]["target"]["dev"], test["tasks"]["target"]["test"]
    table: dict[str, dict[str, float | None]] = {}
    for metric, name in (("accuracy", "accuracy"), ("macro_f1", "macro-F1")):
        table[f"dev {name}, all training data"] = {SINGLE: single_dev.get(metric), SEQUENTIAL: seq_dev.get(metric),
                                                   MULTI: mt_dev.get(metric)}
    for metric, name in (("accuracy", "accuracy"), ("macro_f1", "macro-F1")):
        table[f"test {name}, all training data"] = {SINGLE: single_test.get(metric), SEQUENTIAL: seq_test.get(metric),
                                                    MULTI: mt_test.get(metric)}
    seeds = list(multitask["dev"].get("fewshot_seeds", []))
    ks = sorted(int(k.removeprefix("k")) for k in dev.get("fewshot", {}))
    seq_few = finetune_fewshot(finetune_rows, ks, seeds)
    for k in ks:
        runs = dev["fewshot"][f"k{k}"]
        for metric, name in (("accuracy", "accuracy"), ("macro_f1", "macro-F1")):
            table[f"dev {name}, {k} example{'s' if k != 1 else ''} per class"] = {
                SINGLE: runs.get("single_task", {}).get(f"{metric}_mean"),
                SEQUENTIAL: seq_few.get(k, {}).get(metric), MULTI: runs.get("multitask", {}).get(f"{metric}_mean")}
    return table


def verdict(scores: Mapping[str, float | None], setting: str, docs: int | None = None) -> str | None:
    """Which of the three has the best score in ``setting``, and how far behind it each other one is (for an
    accuracy over ``docs`` documents, also as a number of documents)."""
    known = sorted(((v, k) for k, v in scores.items() if v is not None and v == v), key=lambda x: -x[0])
    if len(known) < 2:
        return None
    best, winner = known[0]
    if best == known[1][0]:
        tied = [k for v, k in known if v == best]
        return f"{setting}: {' and '.join(tied)} tie at {best:.3f}"

    def behind(value: float) -> str:
        gap = f"{value - best:+.3f}"
        if docs:
            n = round((best - value) * docs)
            gap += f", {n} document{'s' if n != 1 else ''} of {docs} fewer"
        return gap

    others = ", ".join(f"{k} {v:.3f} ({behind(v)})" for v, k in known[1:])
    return f"{setting}: **{winner}** wins with {best:.3f}; {others}"


def seed_spread(rows: pd.DataFrame, k: int) -> float | None:
    """The standard deviation over finetune's seeds of the fine-tuned model's few-shot dev accuracy at ``k``."""
    part = rows[(rows["k"].astype(str) == str(k)) & (rows["variant"] == "pretrained")]
    return float(part["accuracy"].std()) if len(part) > 1 else None


def lines(multitask: Mapping[str, Any], evaluate: Mapping[str, Any], finetune: Mapping[str, Any],
          finetune_rows: pd.DataFrame, history_png: str | None = None) -> tuple[list[str], list[str]]:
    """(headline bullets, the section) of the report."""
    table = comparison(multitask, evaluate, finetune, finetune_rows)
    dev, test = multitask["dev"], multitask["test"]
    tasks = list(dev["tasks"])
    settings = [s for s in table if s.startswith("test accuracy")] + [
        s for s in table if s.startswith("dev accuracy") and "per class" in s]
    docs = {s: test["tasks"]["target"].get("test_docs") if s.startswith("test") else dev.get("dev_score_docs")
            for s in settings}
    verdicts = [v for s in settings if (v := verdict(table[s], s, docs[s])) is not None]
    headline = [f"- Multitask ({' + '.join(tasks)}, one encoder, a head each) on the target task: " + "; ".join(
        verdicts) + "."] if verdicts else []
    section = ["## Multitask learning: one encoder, a head per task (target task)", "",
               f"The multitask stage trains one encoder with a head for each of {', '.join(f'`{t}`' for t in tasks)} "
               f"on interleaved one-task batches ({dev.get('sampling', 'temperature')} sampling"
               + (f", T = {dev['temperature']:g}" if dev.get("sampling") == "temperature" else "")
               + f"), early-stopped on `{dev.get('early_stopping', 'dev/loss')}` (the few-shot runs on "
               f"`{dev.get('fewshot_early_stopping', 'dev/target/loss')}`). Single-task is the same loop, "
               "recipe and initialisation on the target task alone; sequential transfer is the finetune stage's "
               "model (train on the source task, then a new head fine-tuned on the target task).", "",
               "| target task | " + " | ".join((SINGLE, SEQUENTIAL, MULTI)) + " |", "|---|---:|---:|---:|"]
    for setting, scores in table.items():
        section.append(f"| {setting} | " + " | ".join(_fmt(scores[c]) for c in (SINGLE, SEQUENTIAL, MULTI)) + " |")
    seeds = dev.get("fewshot_seeds", [])
    section += ["", f"Dev scores come from the half of the target dev split that early stopping did not see "
                f"({dev.get('dev_score_docs')} documents), for all three. Few-shot: k training examples per class "
                f"of the target task (the other tasks keep all theirs), drawn as finetune draws them, mean over "
                f"seed{'s' if len(seeds) != 1 else ''} {', '.join(map(str, seeds))}; no few-shot model is kept, so "
                "few-shot has dev scores only."]
    for k in sorted(int(key.removeprefix("k")) for key in dev.get("fewshot", {})):
        spread = seed_spread(finetune_rows, k)
        if spread is not None:
            section[-1] += (f" At k = {k} the fine-tuned model's dev accuracy varies by {spread:.3f} (standard "
                            "deviation) between finetune's seeds: few-shot gaps smaller than that are within the "
                            "draw of the examples.")
    section += ["",
                "Each task in the multitask model:", "",
                "| task | training docs | share of batches | dev accuracy | test accuracy | test macro-F1 |",
                "|---|---:|---:|---:|---:|---:|"]
    for name, t in dev["tasks"].items():
        tm = test["tasks"].get(name, {}).get("test", {})
        section.append(f"| {name} | {t['train_docs']} | {t['sampling_probability']:.2f} | {_fmt(t['dev']['accuracy'])}"
                       f" | {_fmt(tm.get('accuracy'))} | {_fmt(tm.get('macro_f1'))} |")
    if "source" in test["tasks"]:
        own, shared = evaluate["source"]["test"]["accuracy"], test["tasks"]["source"]["test"]["accuracy"]
        section += ["", f"On the source task, the train stage's own model scores {_fmt(own)} test accuracy, the "
                    f"multitask model's source head {_fmt(shared)}."]
    if history_png:
        section += ["", f"![multitask history]({history_png})"]
    section += ["", "Closing note: " + ("; ".join(verdicts) if verdicts else "no comparison could be made") + ".", ""]
    return headline, section
