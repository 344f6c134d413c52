"""The regression gate: unit tests of the verdicts, and the retrain script end to end."""
from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from repo_copy import GIT, ROOT, copy_repo, set_params, sh

from reprotext.errors import ReprotextError
from reprotext.gate import Change, dvc_executable, judge, render_report, render_verdicts

CHANGES = [
    Change("metrics/evaluate.json:source/test/macro_f1", 0.80, 0.79),
    Change("metrics/evaluate.json:target/test/macro_f1", 0.90, 0.899),
    Change("metrics/evaluate.json:target/test/accuracy", 0.95, 0.96),
    Change("metrics/train.json:dev/loss", 0.30, 0.33),
]


def test_suffix_selects_every_matching_metric_and_tolerance_applies():
    verdicts = judge(CHANGES, "test/macro_f1", tolerance=0.005)
    assert [(v.change.key.split(":")[1], v.regressed) for v in verdicts] == [
        ("source/test/macro_f1", True),   # -0.010 is beyond 0.005
        ("target/test/macro_f1", False),  # -0.001 is within
    ]
    assert not judge(CHANGES, "target/test/accuracy", 0.0)[0].regressed


def test_loss_metrics_are_lower_is_better():
    (v,) = judge(CHANGES, "dev/loss", tolerance=0.01)
    assert v.lower_is_better and v.regressed
    assert not judge(CHANGES, "dev/loss", tolerance=0.05)[0].regressed


def test_a_vanished_metric_is_a_regression_and_a_new_one_is_not():
    assert judge([Change("m.json:test/acc", 0.9, None)], "test/acc", 0.1)[0].regressed
    assert not judge([Change("m.json:test/acc", None, 0.9)], "test/acc", 0.1)[0].regressed


def test_unknown_metric_lists_the_known_ones():
    with pytest.raises(ReprotextError, match="no metric matches 'test/f2'; metrics are: source/test/macro_f1"):
        judge(CHANGES, "test/f2", 0.0)


def test_markdown_tables():
    report = render_report(CHANGES[:1], [Change("params.yaml:train/lr", 0.01, 0.02)], "main")
    assert "| metrics/evaluate.json:source/test/macro_f1 | 0.8000 | 0.7900 | -0.0100 |" in report
    assert "| train.lr | 0.0100 | 0.0200 |" in report
    assert "REGRESSION" in render_verdicts(judge(CHANGES, "test/macro_f1", 0.005))


def test_dvc_is_the_one_beside_the_interpreter_then_the_paths(tmp_path, monkeypatch):
    """`.venv/bin/reprotext report` works with nothing activated: it runs the venv's dvc."""
    venv_bin, other = tmp_path / "venv-bin", tmp_path / "elsewhere"
    venv_bin.mkdir(), other.mkdir()
    (other / "dvc").write_text("#!/bin/sh\n")
    (other / "dvc").chmod(0o755)
    monkeypatch.setattr("sys.executable", str(venv_bin / "python"))
    monkeypatch.setenv("PATH", str(other))
    assert dvc_executable() == str(other / "dvc")
    (venv_bin / "dvc").write_text("#!/bin/sh\n")
    assert dvc_executable() == str(venv_bin / "dvc")
    (venv_bin / "dvc").unlink()
    monkeypatch.setenv("PATH", str(tmp_path / "nothing"))
    with pytest.raises(ReprotextError, match="dvc: not found beside .* nor on the PATH"):
        dvc_executable()


def test_workflow_is_valid_against_the_github_schema():
    proc = subprocess.run(["check-jsonschema", "--builtin-schema", "vendor.github-workflows",
                           str(ROOT / ".github/workflows/retrain.yml")], capture_output=True, text=True,
                          env={"PATH": str(Path(__import__("sys").executable).parent)})
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.slow
def test_retrain_script_gates_worse_and_passes_better(tmp_path):
    baseline = {"max_epochs": 2, "lr": 0.03}  # cut short: the same recipe trained to convergence is better
    repo = copy_repo(tmp_path / "repo", {
        "prepare": {"max_docs": 400}, "tokenize": {"vocab_size": 600}, "embed": {"dim": 16, "epochs": 1},
        "train": {**baseline, "bag": {"buckets": 20_000}}, "finetune": baseline})
    remote = tmp_path / "remote"
    sh(["dvc", "remote", "add", "-d", "local", str(remote)], repo)
    script = str(repo / ".github/scripts/retrain.sh")

    # The first run has no baseline: it passes and pushes.
    first = sh([script], repo, extra_env={"BASELINE": "does-not-exist", "PUSH": "true"})
    assert "no baseline yet" in first.stdout
    sh(["git", "add", "-A"], repo)
    sh([*GIT, "commit", "-qm", "baseline"], repo)
    base_rev = sh(["git", "rev-parse", "HEAD"], repo).stdout.strip()

    # A near-zero learning rate: the gate must fail and nothing is pushed.
    worse = {"lr": 1e-5}
    set_params(repo, {"train": worse, "finetune": worse})
    sh([*GIT, "commit", "-qam", "worse"], repo)
    failed = sh([script], repo, check=False, extra_env={"BASELINE": base_rev, "PUSH": "true"})
    assert failed.returncode == 1, failed.stdout + failed.stderr
    assert "REGRESSION" in failed.stdout and "gate: FAILED" in failed.stderr
    assert "==> dvc push" not in failed.stdout
    assert "| train.lr | 0.0300 | 0.0000 |" in (repo / "retrain-report.md").read_text()
    sh(["git", "checkout", "-q", "--", "."], repo)

    # The same rate trained until early stopping ends it (its first two epochs are the baseline's): better; passes
    # and pushes. (A higher rate is no safe "better": the sparse bag's SparseAdam overshoots at 0.1.)
    better = {"lr": 0.03, "max_epochs": 12}
    set_params(repo, {"train": better, "finetune": better})
    passed = sh([script], repo, extra_env={"BASELINE": base_rev, "PUSH": "true"})
    assert "gate: passed" in passed.stdout and "==> dvc push" in passed.stdout
    sh(["git", "add", "-A"], repo)
    sh([*GIT, "commit", "-qm", "better"], repo)

    # A fresh clone restores every output from the remote.
    clone = tmp_path / "clone"
    sh(["git", "clone", "-q", str(repo), str(clone)], tmp_path)
    sh(["dvc", "pull", "dvc.yaml"], clone)  # the classification pipeline (retrieval/dvc.yaml is its own)
    assert (clone / "models/finetune/model.pt").read_bytes() == (repo / "models/finetune/model.pt").read_bytes()
    assert sh(["dvc", "status", "--json", "dvc.yaml"], clone).stdout.strip() == "{}"  # the retrieval pipeline never ran
