"""Make a git copy of this repository (what a clone holds) to run the real pipeline in."""
from __future__ import annotations

import os
import shutil
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
GIT = ["git", "-c", "user.email=ci@localhost", "-c", "user.name=ci"]
# The real pipeline on ~400 documents per task: a run takes well under a minute.
TINY = {
    "prepare": {"max_docs": 400},
    "tokenize": {"vocab_size": 600},
    "embed": {"dim": 16, "epochs": 1},
    "pretrain": {"max_tokens": 8192, "epochs": 2, "seq_len": 32, "dev_tokens": 1000, "negatives": 64},
    "train": {"max_epochs": 2, "lr": 0.1, "bag": {"buckets": 20_000}},
    "finetune": {"max_epochs": 2, "lr": 0.1, "fewshot_k": [1, 5], "fewshot_seeds": [0, 1],
                 "dual_encoder": {"epochs": 1}},
    "multitask": {"max_epochs": 2, "lr": 0.1, "fewshot_k": [1], "fewshot_seeds": [0]},
}


def env() -> dict[str, str]:
    """The test's environment with the venv's tools first and no outside tracking server."""
    out = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_TRACKING_URI", "DVC_ROOT", "DVC_EXP_NAME")}
    out["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{out.get('PATH', '')}"
    out["DVC_NO_ANALYTICS"] = "1"
    return out


def sh(args: list[str], cwd: Path, check: bool = True, extra_env: dict[str, str] | None = None,
       timeout: int = 900) -> subprocess.CompletedProcess:
    proc = subprocess.run(args, cwd=cwd, env={**env(), **(extra_env or {})}, capture_output=True, text=True,
                          timeout=timeout)
    if check:
        assert proc.returncode == 0, f"{' '.join(args)} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc


def set_params(repo: Path, overrides: dict[str, dict]) -> None:
    params = yaml.safe_load((repo / "params.yaml").read_text())
    for section, values in overrides.items():
        params[section].update(values)
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def copy_repo(dest: Path, overrides: dict[str, dict] | None = None) -> Path:
    """Copy the tracked and unignored files into ``dest``, apply params overrides, commit."""
    files = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                           capture_output=True, text=True, check=True).stdout.split("\0")
    for rel in filter(None, files):
        if (ROOT / rel).is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / rel, dest / rel)
    set_params(dest, overrides if overrides is not None else TINY)
    sh(["git", "init", "-q", "-b", "main"], dest)
    sh(["git", "add", "-A"], dest)
    sh([*GIT, "commit", "-qm", "copy"], dest)
    return dest


def stage_command(repo: Path, name: str) -> list[str]:
    """Stage ``name``'s command from ``repo``'s dvc.yaml, run by this interpreter."""
    cmd = shlex.split(yaml.safe_load((repo / "dvc.yaml").read_text())["stages"][name]["cmd"])
    assert cmd[:3] == ["python", "-m", f"stages.{name}"], cmd
    return [sys.executable, *cmd[1:]]


@dataclass
class StageRun:
    """A finished stage process: its directory, exit code and stderr."""

    cwd: Path
    returncode: int
    stderr: str


def run_stages(jobs: list[tuple[Path, list[str]]], timeout: int = 300) -> list[StageRun]:
    """Run ``python -m stages.<args[0]> <args[1:]>`` in each directory, all at once, each on its own MLflow DB."""
    procs = []
    for cwd, args in jobs:
        # This checkout's `stages` and `reprotext`, even where the venv's editable install points at another one.
        path = os.pathsep.join([str(ROOT), str(ROOT / "src")])
        env = {**os.environ, "PYTHONPATH": path, "MLFLOW_TRACKING_URI": f"sqlite:///{cwd / 'mlflow.db'}"}
        env.pop("DVC_ROOT", None)
        procs.append(subprocess.Popen([sys.executable, "-m", f"stages.{args[0]}", *args[1:]], cwd=cwd, env=env,
                                      stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True))
    return [StageRun(cwd, p.wait(timeout=timeout), p.stderr.read()) for (cwd, _), p in zip(jobs, procs)]
