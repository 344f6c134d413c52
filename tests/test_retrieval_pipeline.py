"""Retrieval in the real pipeline (tiny params): the evaluate stage's numbers, the dual encoder, the CLI."""
from __future__ import annotations

import json

import pytest
from mlflow.tracking import MlflowClient

from reprotext import cli

pytestmark = pytest.mark.slow

METHODS = {"word2vec", "trained_encoder", "finetuned_encoder", "dual_encoder", "tfidf_cosine", "bm25"}


def test_evaluate_reports_retrieval_for_every_representation(pipeline):
    ev = json.loads((pipeline / "metrics/evaluate.json").read_text())
    for role in ("source", "target"):
        r = ev[role]["retrieval"]
        assert set(r["methods"]) == METHODS
        assert r["queries"] == ev[role]["test_docs"] and r["collection_docs"] > r["queries"]
        for m in r["methods"].values():
            for key in ("precision_at_10", "map_at_100", "recall_at_100"):
                assert 0.0 <= m[key] <= 1.0
            assert m["recall_at_100"] <= r["recall_at_100_ceiling"] + 1e-9
        assert r["best_learned"] in METHODS - {"tfidf_cosine", "bm25"}
        assert r["dual_encoder_minus_finetuned_encoder_map_at_100"] == pytest.approx(
            r["methods"]["dual_encoder"]["map_at_100"] - r["methods"]["finetuned_encoder"]["map_at_100"])
        assert (pipeline / f"reports/evaluate/{role}_retrieval_pr.png").read_bytes()[:4] == b"\x89PNG"
    ft = json.loads((pipeline / "metrics/finetune.json").read_text())
    assert ft["dual_encoder"]["pairs"] == "same_label" and ft["dual_encoder"]["epochs_run"] == 1
    report = (pipeline / "reports/report.md").read_text()
    assert "## Retrieval: query by example" in report and "source_retrieval_pr.png" in report
    client = MlflowClient(f"sqlite:///{pipeline}/mlflow.db")
    exp = client.get_experiment_by_name("reprotext")
    evaluate = [r for r in client.search_runs([exp.experiment_id]) if r.info.run_name == "evaluate"][0]
    assert "source/retrieval/bm25/map_at_100" in evaluate.data.metrics


def test_index_and_search_the_pipelines_dual_encoder(pipeline, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(pipeline)  # the CLI's defaults (models/tokenizer) are relative to the repository
    cli.main(["index", "--model", "models/finetune/dual_encoder", "--input", "data/split/target/train.parquet",
              "--output", str(tmp_path / "idx")])
    assert "dual_encoder" in capsys.readouterr().out
    cli.main(["search", "--index", str(tmp_path / "idx"), "-k", "5", "oil prices rose"])
    hits = capsys.readouterr().out.strip().splitlines()
    assert len(hits) == 5 and [h.split()[0] for h in hits] == ["1", "2", "3", "4", "5"]
    with pytest.raises(SystemExit) as exc:
        cli.main(["search", "--index", str(tmp_path / "idx"), "--model", "models/train", "oil"])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and "rebuild the index" in err and len(err.strip().splitlines()) == 1
