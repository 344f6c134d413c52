"""The lecture's report: one section per lesson, each figure signed with its DVC experiment and MLflow run.

Every number comes from a sweep read back by :func:`reprotext.lecture.sweep.collect`:
the parent runs' metrics (the stages' metrics files), the train runs' per-epoch
metric history, and artefacts the stages logged (the tokenizers, the word2vec
report). A lesson whose experiments are not in the sweep (a smaller size, a
failed run) says so instead of showing a figure.
"""
from __future__ import annotations

import math
import tempfile
from functools import partial
from collections.abc import Callable
from pathlib import Path

from reprotext.lecture.common import Figures, _fmt, _table, noise, spread
from reprotext.lecture.lessons import (dropout_batchnorm, encoders, gradient_descent, overfitting, regularisers,
                                       tokenizers, transfer, word2vec)
from reprotext.lecture.pipeline_lessons import multitask, ngrams, pretraining, retrieval
from reprotext.lecture.plan import _value
from reprotext.lecture.sweep import Sweep
from reprotext.tracking import git_commit, redact

LESSONS: tuple[Callable, ...] = (overfitting, regularisers, dropout_batchnorm, gradient_descent, encoders)
LATER: tuple[Callable, ...] = (transfer, multitask, pretraining, ngrams, retrieval)  # after the two that read artefacts


def code_commit(root: Path, report: Path, figures: Path) -> tuple[str, bool]:
    """(commit, dirty) of the code at ``root``: the report and its figures are the sweep's outputs, not its code."""
    return git_commit(root, ignore=[p.relative_to(root).as_posix() for p in (report, figures) if p.is_relative_to(root)])


def write_report(sweep: Sweep, report: Path, figures: Path) -> None:
    """Write ``report`` (markdown) and its figures under ``figures``."""
    for old in figures.glob("*.png"):
        old.unlink()
    figs = Figures(figures, report)
    meta = sweep.meta
    if "commit" in meta:  # the code the sweep ran, recorded when it started
        commit, dirty = meta["commit"], bool(meta.get("dirty"))
    else:  # a sweep that recorded none: the code the report is written from
        commit, dirty = code_commit(sweep.root, report, figures)
    lines = ["# The seminar, demonstrated", "",
             f"One sweep of queued DVC experiments (`make lecture`, size `{sweep.plan.size}`), every number read back "
             f"from MLflow (`{redact(sweep.uri).replace(str(sweep.root), '<repo>')}`). Sweep `{sweep.sweep}` on commit "
             f"`{commit[:10]}`{' (with uncommitted changes)' if dirty else ''}"
             + (f", started {meta['started']}, {meta['seconds'] / 60:.1f} minutes wall time on {meta['cores']} CPU "
                f"cores with {meta['jobs']} experiments at a time (threads each: {meta.get('threads', 'default')})." if meta.get("seconds")
                else "."), ""]
    here = {run for r in sweep.results.values() for run in r.ran.values()}
    used = [run for r in sweep.results.values() for run in r.runs.values()]
    earlier = sum(run not in here for run in used)
    if used:
        lines += [f"The experiments read {len(used)} stage results: {len(here)} stage runs of this sweep (the queued "
                  f"experiments share the baseline's wherever their params and inputs agree) and {earlier} restored "
                  "from DVC's run cache, computed by an earlier sweep with the same params, code and inputs. The wall "
                  "time above is that of this sweep's own runs.", ""]
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
    sections: list[str] = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for lesson in (*LESSONS, partial(tokenizers, work=work), partial(word2vec, work=work), *LATER):
            before = len(figs.verdicts)
            part = lesson(sweep, figs)
            if len(figs.verdicts) == before:  # a section that could not be shown still gets its row
                figs.verdicts.append((part[0].lstrip("# "), None, "Not shown."))
            sections += part
    yard = noise(sweep)
    lines += ["## Which lessons this run shows", "",
              "Each section states the lesson, the setting in which the literature shows it, and ends with whether "
              "this run agrees (and if not, the most likely reason, with its number). "
              + (f"Single runs are compared against what the seed alone moves: the baseline's test accuracy ranges "
                 f"over {_fmt(yard)} across its {spread(sweep, 'baseline').seeds} seeds (train.seed; MLflow train runs "
                 + ", ".join(f"`{sweep[n].runs.get('train', '?')}`" for n in spread(sweep, "baseline").names) + ")."
                 if not math.isnan(yard) else "This sweep ran the baseline with one seed: no yardstick for noise."), ""]
    word = {True: "agrees", False: "does not agree", None: "cannot tell"}
    lines += _table(["lesson", "this run"], [(section, word[agrees]) for section, agrees, _ in figs.verdicts])
    lines += [f"{sum(a is True for _, a, _ in figs.verdicts)} of {len(figs.verdicts)} agree.", ""]
    lines += sections
    report.parent.mkdir(parents=True, exist_ok=True)
    report.write_text("\n".join(lines).rstrip() + "\n", encoding="utf-8")

