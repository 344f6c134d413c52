"""Compare a run's metrics and params with a baseline revision; fail on a regression.

Reads `dvc metrics diff` / `dvc params diff` (workspace against a git revision),
so it works on any pipeline whose metrics files are committed with `cache: false`.
"""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from reprotext.errors import ReprotextError

LOWER_IS_BETTER = ("loss", "error", "ece")


@dataclass(frozen=True)
class Change:
    key: str  # "<file>:<metric key with / separators>"
    old: float | str | None
    new: float | str | None

    @property
    def delta(self) -> float | None:
        if isinstance(self.old, (int, float)) and isinstance(self.new, (int, float)):
            return float(self.new) - float(self.old)
        return None


@dataclass(frozen=True)
class Verdict:
    change: Change
    tolerance: float
    lower_is_better: bool

    @property
    def regressed(self) -> bool:
        d = self.change.delta
        if d is None:
            return self.change.new is None  # a gated metric that vanished is a regression
        return d > self.tolerance if self.lower_is_better else d < -self.tolerance


def baseline_exists(rev: str, cwd: Path) -> bool:
    proc = subprocess.run(["git", "rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}"], cwd=cwd,
                          capture_output=True, text=True)
    return proc.returncode == 0


def dvc_executable() -> str:
    """This environment's `dvc` (beside the interpreter: `.venv/bin/reprotext` works with nothing activated),
    else the one on the PATH."""
    own = Path(sys.executable).with_name("dvc")
    if own.is_file():
        return str(own)
    found = shutil.which("dvc")
    if found is None:
        raise ReprotextError(f"dvc: not found beside {sys.executable} nor on the PATH; install the project "
                             "(`make setup`) or put dvc on the PATH")
    return found


def _dvc_diff(kind: str, rev: str, cwd: Path) -> list[Change]:
    args = [kind, "diff", rev, "--json"] + (["--all"] if kind == "metrics" else [])
    proc = subprocess.run([dvc_executable(), *args], cwd=cwd, capture_output=True, text=True)
    if proc.returncode != 0:
        reason = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise ReprotextError(f"`dvc {' '.join(args)}` failed in {cwd}: {reason}")
    data = json.loads(proc.stdout or "{}")
    return [Change(f"{path}:{key.replace('.', '/')}", v.get("old"), v.get("new"))
            for path, entries in sorted(data.items()) for key, v in sorted(entries.items())]


def metric_changes(rev: str, cwd: Path) -> list[Change]:
    """Every metric of the workspace next to its value at ``rev``."""
    return _dvc_diff("metrics", rev, cwd)


def param_changes(rev: str, cwd: Path) -> list[Change]:
    """The params whose value differs from ``rev``."""
    return _dvc_diff("params", rev, cwd)


def judge(changes: list[Change], metric: str, tolerance: float) -> list[Verdict]:
    """Verdicts for every metric whose key ends with ``metric`` (e.g. test/macro_f1)."""
    wanted = metric.replace(".", "/")
    matched = [c for c in changes if c.key.split(":", 1)[1] == wanted or c.key.endswith("/" + wanted)]
    if not matched:
        known = ", ".join(c.key.split(":", 1)[1] for c in changes[:12])
        raise ReprotextError(f"no metric matches {metric!r}; metrics are: {known}")
    lower = any(word in wanted for word in LOWER_IS_BETTER)
    return [Verdict(c, tolerance, lower) for c in matched]


def _fmt(v) -> str:
    if v is None:
        return "—"
    return f"{v:.4f}" if isinstance(v, float) else str(v)


def render_report(metrics: list[Change], params: list[Change], baseline: str) -> str:
    """A Markdown report: metric values against the baseline, and the params that changed."""
    lines = [f"## Metrics against `{baseline}`", "", "| metric | baseline | this run | change |", "|---|---:|---:|---:|"]
    for c in metrics:
        d = c.delta
        lines.append(f"| {c.key} | {_fmt(c.old)} | {_fmt(c.new)} | {'' if d is None else f'{d:+.4f}'} |")
    lines += ["", f"## Params changed since `{baseline}`", ""]
    if params:
        lines += ["| param | baseline | this run |", "|---|---|---|"]
        lines += [f"| {c.key.split(':', 1)[1].replace('/', '.')} | {_fmt(c.old)} | {_fmt(c.new)} |" for c in params]
    else:
        lines.append("No params changed.")
    return "\n".join(lines) + "\n"


def render_verdicts(verdicts: list[Verdict]) -> str:
    lines = ["| gated metric | baseline | this run | change | tolerance | verdict |", "|---|---:|---:|---:|---:|---|"]
    for v in verdicts:
        d = v.change.delta
        sign = "≤" if v.lower_is_better else "≥"
        lines.append(f"| {v.change.key} | {_fmt(v.change.old)} | {_fmt(v.change.new)} | "
                     f"{'' if d is None else f'{d:+.4f}'} | {sign} baseline ∓ {v.tolerance:g} | "
                     f"{'REGRESSION' if v.regressed else 'ok'} |")
    return "\n".join(lines) + "\n"
