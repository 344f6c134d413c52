"""The retrieval pipeline as DVC runs it (retrieval/dvc.yaml) on a tiny BEIR collection, apart from `dvc repro`."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from beir_tiny import write_beir
from mlflow.tracking import MlflowClient
from repo_copy import copy_repo, sh

from reprotext.config import RETRIEVAL_SECTIONS, parse_section, read_params

ROOT = Path(__file__).resolve().parents[1]
TINY = {"vocab": {"vocab_size": 400}, "word2vec": {"dim": 16, "epochs": 1}, "dssm": {"epochs": 2, "batch_size": 16}}
STAGES = ["collection", "vocab", "word2vec", "bm25", "dssm", "hybrid"]


def test_retrieval_params_and_stages_match():
    params = read_params(ROOT / "retrieval" / "params.yaml", RETRIEVAL_SECTIONS)
    assert set(params) == set(RETRIEVAL_SECTIONS)
    for name in RETRIEVAL_SECTIONS:
        parse_section(name, params[name], sections=RETRIEVAL_SECTIONS)
    dvc = yaml.safe_load((ROOT / "retrieval" / "dvc.yaml").read_text())
    assert list(dvc["stages"]) == STAGES
    for name, stage in dvc["stages"].items():
        assert stage["params"] == [{"retrieval/params.yaml": [name]}] and stage["wdir"] == ".."
        assert f"python -m retrieval.{name} --params retrieval/params.yaml " in stage["cmd"]
        assert (ROOT / "retrieval" / f"{name}.py").is_file()
    # The classification pipeline neither runs nor waits on retrieval.
    main = yaml.safe_load((ROOT / "dvc.yaml").read_text())
    assert not set(main["stages"]) & set(STAGES)


@pytest.mark.slow
def test_dvc_repro_runs_every_stage_as_an_mlflow_run(tmp_path):
    repo = copy_repo(tmp_path / "repo", {})
    write_beir(repo / "data" / "retrieval" / "beir")
    params = yaml.safe_load((repo / "retrieval" / "params.yaml").read_text())
    for section, values in TINY.items():
        params[section].update(values)
    (repo / "retrieval" / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    sh(["dvc", "repro", "retrieval/dvc.yaml"], repo)
    result = json.loads((repo / "metrics/retrieval/hybrid.json").read_text())
    for method in ("bm25", "dense", "hybrid"):
        assert 0.0 < result["test"][method]["ndcg_at_10"] <= 1.0
    assert result["fusion"]["method"] in ("rrf", "convex") and result["test"]["queries"] == 9
    assert "| hybrid (" in (repo / "reports/retrieval/hybrid/report.md").read_text()
    assert "fusion_grid" not in result and (repo / "reports/retrieval/hybrid/fusion_grid.csv").is_file()
    client = MlflowClient(f"sqlite:///{repo}/mlflow.db")
    runs = client.search_runs([client.get_experiment_by_name("reprotext").experiment_id])
    stage_runs = {r.data.tags.get("reprotext.stage"): r for r in runs if r.data.tags.get("reprotext.stage")}
    assert set(stage_runs) == set(STAGES)
    parent = {r.data.tags["mlflow.parentRunId"] for r in stage_runs.values()}
    assert len(parent) == 1 and client.get_run(parent.pop()).data.tags["reprotext.pipeline_key"].startswith("retrieval-")
    assert "test/hybrid/ndcg_at_10" in stage_runs["hybrid"].data.metrics
    assert not (repo / "mlruns").exists()
    # The search CLI on what the pipeline wrote.
    sh(["reprotext", "index", "--method", "hybrid", "--model", "models/retrieval/dssm", "--tokenizer",
        "models/retrieval/tokenizer", "--input", "data/retrieval/beir", "--output", str(tmp_path / "idx"),
        "--fusion-from", "metrics/retrieval/hybrid.json"], repo)
    out = sh(["reprotext", "search", "--index", str(tmp_path / "idx"), "-k", "2", "bone fracture"], repo).stdout
    assert len(out.strip().splitlines()) == 2
    assert "up to date" in sh(["dvc", "repro", "retrieval/dvc.yaml"], repo).stdout
