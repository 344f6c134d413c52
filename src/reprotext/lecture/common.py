"""What every lesson of the report shares: figures signed with their runs, tables, bars, seed spreads, verdicts."""
from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from reprotext.lecture.sweep import Result, Sweep


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
        self.verdicts: list[tuple[str, bool | None, str]] = []  # (section, agrees, sentence), in report order
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


def _comparable(sweep: Sweep, wanted: Iterable[str], reference: str = "baseline") -> list[str]:
    """The experiments of ``wanted`` that succeeded, when ``reference`` and one more did; else none."""
    names = [n for n in wanted if sweep.ok(n)]
    return names if reference in names and len(names) >= 2 else []


def opening(sweep: Sweep, heading: str, wanted: Iterable[str],
            reference: str = "baseline") -> tuple[list[str], list[str]]:
    """A comparison section's heading and the experiments of ``wanted`` it can compare; with none, the heading and
    a line saying which results are missing."""
    wanted = list(wanted)
    names = _comparable(sweep, wanted, reference)
    return ([heading, ""], names) if names else ([heading, ""] + _missing(sweep, wanted), [])


@dataclass(frozen=True)
class Spread:
    """Dev and test accuracy of an experiment over its seed replicas (itself included)."""

    names: tuple[str, ...]
    dev: tuple[float, ...]
    test: tuple[float, ...]

    @property
    def seeds(self) -> int:
        return len(self.names)

    def mean(self, split: str = "test") -> float:
        values = getattr(self, split)
        return float(np.mean(values)) if values else float("nan")

    def range(self, split: str = "test") -> float:
        """max - min over the seeds: what the seed alone moves (0 with one seed)."""
        values = getattr(self, split)
        return float(np.max(values) - np.min(values)) if values else float("nan")

    def text(self, split: str = "test") -> str:
        if self.seeds < 2:
            return _fmt(self.mean(split))
        return f"{_fmt(self.mean(split))} (range {_fmt(self.range(split))}, {self.seeds} seeds)"


def spread(sweep: Sweep, name: str) -> Spread:
    """``name`` and whichever of its seed replicas finished."""
    names = tuple(n for n in sweep.plan.replicas(name) if sweep.ok(n))
    accs = [_accuracies(sweep[n]) for n in names]
    return Spread(names, tuple(a[0] for a in accs), tuple(a[1] for a in accs))


def noise(sweep: Sweep) -> float:
    """The yardstick of every comparison of single runs: the baseline's test accuracy range over its seeds
    (nan without replicas)."""
    s = spread(sweep, "baseline")
    return s.range("test") if s.seeds >= 2 else float("nan")


def beyond_noise(diff: float, yardstick: float) -> bool:
    """A difference larger than what the seed alone moves (any difference counts when nothing measured that)."""
    return not math.isnan(diff) and (math.isnan(yardstick) or abs(diff) > yardstick)


def setting(text: str) -> list[str]:
    """The lesson, the setting in which the literature shows it, and its citation: a section's opening paragraph."""
    return [f"**The lesson and its setting.** {text}", ""]


def verdict(figs: Figures, section: str, agrees: bool | None, sentence: str) -> list[str]:
    """A section's closing sentence: does this run agree with the cited result (and if not, why, with a number).

    ``agrees`` None: the run cannot tell (the experiments are missing). Recorded for the report's summary table.
    """
    figs.verdicts.append((section, agrees, sentence))
    word = {True: "Agrees.", False: "Does not agree.", None: "Cannot tell."}[agrees]
    return [f"**Does this run agree?** {word} {sentence}", ""]



def fewshot(r: Result) -> dict[str, dict[int, tuple[float, float]]]:
    """The finetune stage's few-shot curve: variant -> k -> (mean, std) of target dev accuracy over its seeds."""
    out: dict[str, dict[int, tuple[float, float]]] = {}
    for key, value in r.metrics.items():
        m = re.fullmatch(r"finetune/fewshot/k(\d+)/([^/]+)/accuracy_mean", key)
        if m:
            std = r.m(f"finetune/fewshot/k{m.group(1)}/{m.group(2)}/accuracy_std", 0.0)
            out.setdefault(m.group(2), {})[int(m.group(1))] = (value, std)
    return out


def full_runs(r: Result) -> dict[str, float]:
    """The finetune stage's all-data runs: variant -> target dev accuracy."""
    return {m.group(1): v for k, v in r.metrics.items() if (m := re.fullmatch(r"finetune/runs/([^/]+)/dev/accuracy", k))}


def fewshot_seeds(r: Result) -> int:
    """How many seeds the finetune stage's few-shot means are over: as it recorded them (its ``seeds`` metric),
    else as the experiment asked."""
    recorded = [v for k, v in r.metrics.items() if re.fullmatch(r"finetune/fewshot/k\d+/[^/]+/seeds", k)]
    return int(min(recorded)) if recorded else len(r.exp.overrides.get("finetune.fewshot_seeds") or []) or 1


def gain(a: tuple[float, float], b: tuple[float, float], seeds: int) -> tuple[float, float]:
    """(mean of a - mean of b, the standard error of that difference) from two (mean, std) over ``seeds`` seeds."""
    return a[0] - b[0], math.sqrt((a[1] ** 2 + b[1] ** 2) / max(seeds, 1))


def clear(diff_se: tuple[float, float]) -> bool:
    """A positive difference larger than its standard error."""
    return diff_se[0] > 0 and diff_se[0] > diff_se[1]


def gain_text(diff_se: tuple[float, float], k: int | str) -> str:
    return f"{_fmt(diff_se[0], '+.3f')} ± {_fmt(diff_se[1])} at k = {k}"
