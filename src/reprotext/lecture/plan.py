"""The lecture's sweep definition: the experiments of one size of ``lecture.yaml`` and their ``-S`` overrides."""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from reprotext.errors import ConfigError

PLAN_FILE = "lecture.yaml"
FIRST = "baseline"  # reproduced first, with a plain `dvc repro`; the other experiments are queued on top of it


@dataclass(frozen=True)
class Experiment:
    """One queued experiment: its short name, what it shows and its ``-S`` overrides."""

    name: str
    title: str
    overrides: dict[str, Any]
    replica_of: str | None = None  # a seed replica: the experiment it repeats with another train.seed

    def dvc_name(self, sweep: str) -> str:
        return f"{sweep}-{self.name}"


@dataclass(frozen=True)
class Plan:
    size: str
    jobs: int
    experiments: tuple[Experiment, ...]

    def get(self, name: str) -> Experiment | None:
        return next((e for e in self.experiments if e.name == name), None)

    def replicas(self, name: str) -> list[str]:
        """``name`` and its seed replicas, in plan order."""
        return [e.name for e in self.experiments if e.name == name or e.replica_of == name]


def _has_key(params: dict, key: str) -> bool:
    node: Any = params
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return False
        node = node[part]
    return True


def load_plan(path: Path, size: str, params: dict | None = None) -> Plan:
    """The experiments of ``size`` with their merged overrides: size-wide, then the experiment's, then size-specific.

    ``if_present`` overrides (of the whole file, then of the size) apply only where ``params`` (params.yaml) has
    the key: they switch off work of the stages that no lesson reads.
    """
    if not path.is_file():
        raise ConfigError(f"{path}: the lecture's sweep definition is missing")
    spec = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    sizes, experiments = spec.get("sizes") or {}, spec.get("experiments") or {}
    if size not in sizes:
        raise ConfigError(f"{path}: no size {size!r}; sizes: {', '.join(sizes)}")
    chosen = sizes[size] or {}
    only = chosen.get("only") or list(experiments)
    unknown = [n for n in [*only, *(chosen.get("experiments") or {})] if n not in experiments]
    if unknown:
        raise ConfigError(f"{path}: size {size!r} names unknown experiments {unknown}; defined: {', '.join(experiments)}")
    if FIRST not in only:
        raise ConfigError(f"{path}: size {size!r} must include the {FIRST!r} experiment (every lesson compares with it)")
    optional = {k: v for k, v in {**(spec.get("if_present") or {}), **(chosen.get("if_present") or {})}.items()
                if params is not None and _has_key(params, k)}
    seeds = chosen.get("seeds") or {}
    unknown = [n for n in seeds if n not in only]
    if unknown:
        raise ConfigError(f"{path}: size {size!r} gives seeds to experiments it does not run: {unknown}")
    out, replicas = [], []
    for name in [FIRST, *(n for n in only if n != FIRST)]:
        entry = experiments[name] or {}
        overrides = {**optional, **(chosen.get("set") or {}), **(entry.get("set") or {}),
                     **((chosen.get("experiments") or {}).get(name) or {})}
        out.append(Experiment(name, entry.get("title", name), overrides))
        for seed in seeds.get(name) or []:
            replicas.append(Experiment(f"{name}-seed{seed}", f"{name} with train.seed {seed}",
                                       {**overrides, "train.seed": seed}, replica_of=name))
    return Plan(size, int(chosen.get("jobs", 2)), tuple(out + replicas))


def _value(v: Any) -> str:
    """A ``-S`` value: YAML flow syntax (DVC parses it as YAML)."""
    if isinstance(v, str):
        return v
    return json.dumps(v)

