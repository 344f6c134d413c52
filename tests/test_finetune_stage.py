"""The finetune stage's outputs, and the test-split rule: no stage but evaluate opens data/split/*/test.parquet."""
from __future__ import annotations

import json
import shutil

import pandas as pd
import pytest
import yaml
from repo_copy import sh, stage_command

pytestmark = pytest.mark.slow



def test_finetune_reports_transfer_fewshot_and_zeroshot(pipeline):
    m = json.loads((pipeline / "metrics/finetune.json").read_text())
    assert set(m["runs"]) == {"pretrained", "scratch_train_init", "scratch_random"}
    assert set(m["transfer_gain"]) == {f"{v}.{k}" for v in ("scratch_train_init", "scratch_random")
                                       for k in ("accuracy", "macro_f1")}
    for run in m["runs"].values():
        assert run["epochs_to_best"] == run["best_epoch"] + 1 and 0.0 <= run["dev"]["accuracy"] <= 1.0
        # Warm-up: the bag's two encoder groups (piece table, n-gram table) are frozen, then thaw top first.
        frozen = run["frozen_groups_per_epoch"]
        assert frozen[:2] == [2, 1] and frozen[2:] == [0] * (run["epochs_run"] - 2)
    curve = pd.read_csv(pipeline / "reports/finetune/fewshot.csv", dtype={"k": str})
    params = yaml.safe_load((pipeline / "params.yaml").read_text())["finetune"]
    assert len(curve[curve["k"] != "all"]) == len(params["fewshot_k"]) * len(params["fewshot_seeds"]) * 3
    k1 = curve[(curve["k"] == "1") & (curve["variant"] == "pretrained")]
    assert (k1["train_docs"] == 8).all()  # one per class, 8 classes
    assert {"majority", "word2vec", "source_encoder"} <= set(m["zeroshot"]["dev"])
    assert (pipeline / "reports/finetune/fewshot.png").read_bytes()[:4] == b"\x89PNG"
    assert json.loads((pipeline / "models/finetune/zeroshot.json").read_text())["labels"]


def test_study_fits_do_not_depend_on_the_number_of_workers(pipeline, tmp_path):
    """The study's fits run over finetune.workers processes (2 in params.yaml); one process gives the same numbers."""
    repo = shutil.copytree(pipeline, tmp_path / "repo", symlinks=True)
    params = yaml.safe_load((repo / "params.yaml").read_text())
    assert params["finetune"]["workers"] == 2
    params["finetune"]["workers"] = 1
    (repo / "params.yaml").write_text(yaml.safe_dump(params))
    sh(stage_command(repo, "finetune"), repo)
    for rel in ("reports/finetune/fewshot.csv", "reports/finetune/zeroshot_dev.csv"):
        assert (repo / rel).read_text() == (pipeline / rel).read_text(), rel
    one, two = (json.loads((r / "metrics/finetune.json").read_text()) for r in (repo, pipeline))
    assert one["runs"] == two["runs"] and one["fewshot"] == two["fewshot"]


def test_no_stage_but_evaluate_opens_a_test_split(pipeline, tmp_path):
    repo = shutil.copytree(pipeline, tmp_path / "repo", symlinks=True)
    tests = sorted(repo.glob("data/split/*/test.parquet"))
    assert len(tests) == 2
    for path in tests:
        path.unlink()
    # Every stage after split runs (and rewrites its outputs) without the test files...
    for stage in ("tokenize", "embed", "pretrain", "train", "finetune"):
        sh(stage_command(repo, stage), repo)
    # ...and evaluate, which must read them, fails on the first one: the check above could fail.
    proc = sh(stage_command(repo, "evaluate"), repo, check=False)
    assert proc.returncode == 2 and "test.parquet" in proc.stderr
