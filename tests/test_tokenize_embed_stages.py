"""The tokenize and embed stage scripts end to end: contract, unlabeled text, determinism, reports, tracking.

Every stage runs as `python -m stages.<name>` in its own scratch directory, as
`dvc repro` runs it, on tiny synthetic splits; the runs of one step start
together, to use both cores.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
import yaml
from conftest import make_corpus
from repo_copy import run_stages

from reprotext import embeddings
from reprotext.tokenizer import UNK, TokenArray, Tokenizer

ROOT = Path(__file__).resolve().parents[1]
ARGS = {
    "tokenize": ["--splits", "data/split", "--tokenizer", "models/tokenizer", "--tokens", "data/tokens",
                 "--report", "reports/tokenize", "--metrics", "metrics/tokenize.json"],
    "embed": ["--tokenizer", "models/tokenizer", "--tokens", "data/tokens", "--out", "models/embeddings",
              "--report", "reports/embed", "--metrics", "metrics/embed.json"],
}
UNLABELED_ARGS = ["--unlabeled", "data/prepared/unlabeled.parquet"]
PARAMS = {"tokenize": {"vocab_size": 500},
          "embed": {"dim": 8, "epochs": 2, "min_count": 1, "probes": ["rocket", "engine", "zyxwvut"]}}
TEST_ONLY, UNLABELED_ONLY = "qqtestonly", "zyxwvut"
TOKEN_SETS = {"source/train", "source/dev", "target/train", "target/dev"}


def _write_inputs(cwd: Path) -> None:
    """Tiny split parquets, a test split full of a word found nowhere else, and an unlabeled corpus."""
    for role, seed in (("source", 0), ("target", 1)):
        texts, labels = make_corpus(40, seed)
        cuts = {"train": slice(0, 80), "dev": slice(80, 110), "test": slice(110, 120)}
        for split, cut in cuts.items():
            frame = pd.DataFrame({"text": texts[cut], "label": labels[cut]})
            if split == "test":
                frame["text"] = frame["text"] + f" {TEST_ONLY}" * 20
            if split == "dev":
                frame.loc[0, "text"] += " ꙮ"  # a character no training text has: byte fallback
            (cwd / "data/split" / role).mkdir(parents=True, exist_ok=True)
            frame.to_parquet(cwd / "data/split" / role / f"{split}.parquet", index=False)
    (cwd / "data/prepared").mkdir(parents=True)
    unlabeled = [f"the {UNLABELED_ONLY} of rocket {UNLABELED_ONLY} and engine " * 3] * 40 + ["Привет мир 😀"]
    pd.DataFrame({"text": unlabeled}).to_parquet(cwd / "data/prepared/unlabeled.parquet", index=False)


def _workdir(base: Path, name: str, template_db: Path) -> Path:
    cwd = base / name
    cwd.mkdir()
    (cwd / "params.yaml").write_text(yaml.safe_dump(PARAMS), encoding="utf-8")
    shutil.copy(ROOT / "dvc.yaml", cwd / "dvc.yaml")  # marks the pipeline root for tracking
    shutil.copy(template_db, cwd / "mlflow.db")
    _write_inputs(cwd)
    return cwd


@pytest.fixture(scope="module")
def runs(tmp_path_factory, template_db) -> dict[str, Path]:
    """tokenize then embed in a and b (same inputs, with unlabeled text); tokenize alone in c (without)."""
    base = tmp_path_factory.mktemp("stages")
    a, b, c = (_workdir(base, name, template_db) for name in "abc")
    tokenize, embed = ["tokenize", *ARGS["tokenize"]], ["embed", *ARGS["embed"]]
    steps = [[(a, tokenize + UNLABELED_ARGS), (b, tokenize + UNLABELED_ARGS)], [(a, embed), (b, embed), (c, tokenize)]]
    for jobs in steps:
        for (cwd, args), proc in zip(jobs, run_stages(jobs)):
            assert proc.returncode == 0, f"{args[0]} in {cwd.name} failed:\n{proc.stderr[-3000:]}"
    return {"a": a, "b": b, "c": c}


def _token_sets(cwd: Path) -> set[str]:
    return {str(p.parent.relative_to(cwd / "data/tokens")) for p in (cwd / "data/tokens").rglob("ids.npy")}


def test_train_dev_and_unlabeled_are_encoded_never_test(runs):
    assert _token_sets(runs["a"]) == TOKEN_SETS | {"unlabeled"}
    assert _token_sets(runs["c"]) == TOKEN_SETS
    tok = Tokenizer.load(runs["a"] / "models/tokenizer")
    for name in TOKEN_SETS:
        role, split = name.split("/")
        texts = pd.read_parquet(runs["a"] / f"data/split/{role}/{split}.parquet")["text"].tolist()
        arr = TokenArray.load(runs["a"] / "data/tokens" / name, tok.sha256)
        assert len(arr) == len(texts) and tok.decode(arr[len(arr) - 1]) == texts[-1]
    assert tok.sp.piece_to_id(f"▁{TEST_ONLY}") == UNK  # 400 occurrences in test, none in training text


def test_unlabeled_text_trains_the_tokenizer_and_word2vec(runs):
    with_unlabeled, without = (Tokenizer.load(runs[n] / "models/tokenizer") for n in "ac")
    assert with_unlabeled.sp.piece_to_id(f"▁{UNLABELED_ONLY}") != UNK
    assert without.sp.piece_to_id(f"▁{UNLABELED_ONLY}") == UNK
    tokenize = json.loads((runs["a"] / "metrics/tokenize.json").read_text())
    embed = json.loads((runs["a"] / "metrics/embed.json").read_text())
    assert embed["training_tokens"] == sum(tokenize[s]["tokens"] for s in ("source/train", "target/train", "unlabeled"))
    assert tokenize["unlabeled"]["documents"] == 41 and tokenize["training"]["documents"] == 80 + 80 + 41
    without = json.loads((runs["c"] / "metrics/tokenize.json").read_text())
    assert "unlabeled" not in without and without["training"]["documents"] == 80 + 80


def test_same_inputs_give_byte_identical_outputs(runs):
    a, b = runs["a"], runs["b"]
    files = sorted(p.relative_to(a) for top in ("data/tokens", "models", "reports", "metrics")
                   for p in (a / top).rglob("*") if p.is_file())
    assert len(files) == 5 * 3 + 3 + 2 + 2 + 2 + 2  # token sets, tokenizer, embeddings, 2 reports, 2 metrics
    for rel in files:
        assert (a / rel).read_bytes() == (b / rel).read_bytes(), rel


def test_tokenize_metrics_and_report(runs):
    metrics = json.loads((runs["a"] / "metrics/tokenize.json").read_text())
    assert metrics["vocab_size"] == 500 and 0 < metrics["vocab_used_in_train"] <= 1
    train = metrics["source/train"]
    assert train["documents"] == 80 and train["unk_rate"] == 0.0 and train["byte_rate"] == 0.0
    assert 1 < train["chars_per_token"] < 10 and train["tokens_per_doc_p50"] <= train["tokens_per_doc_p95"]
    assert metrics["source/dev"]["byte_rate"] > 0 and metrics["source/dev"]["unk_rate"] == 0.0
    report = runs["a"] / "reports/tokenize"
    md = (report / "report.md").read_text(encoding="utf-8")
    assert "| source/train | 80 |" in md and "| unlabeled | 41 |" in md
    assert "### source/dev" in md and "### target/dev" in md and "▁" in md
    assert (report / "tokens.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_embeddings_align_with_the_tokenizer_and_report(runs):
    tok = Tokenizer.load(runs["a"] / "models/tokenizer")
    vectors = embeddings.load(runs["a"] / "models/embeddings", tok.sha256)
    assert vectors.shape == (500, 8) and not vectors[0].any()
    metrics = json.loads((runs["a"] / "metrics/embed.json").read_text())
    assert metrics["trained_rows"] + metrics["random_rows"] == 499
    assert {"wordsim353", "simlex999"} <= set(metrics) and metrics["wordsim353"]["pairs"] == 353
    intrinsic = json.loads((runs["a"] / "reports/embed/intrinsic.json").read_text(encoding="utf-8"))
    assert set(intrinsic["neighbours"]) == {"rocket", "engine", UNLABELED_ONLY}
    assert intrinsic["neighbours"][UNLABELED_ONLY]["pieces"] == [f"▁{UNLABELED_ONLY}"]
    md = (runs["a"] / "reports/embed/report.md").read_text(encoding="utf-8")
    assert "| wordsim353 |" in md and "| rocket |" in md


def test_runs_reach_mlflow_with_timings_and_reports(runs):
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{runs['a'] / 'mlflow.db'}")
    found = {r.info.run_name: r for r in client.search_runs(client.get_experiment_by_name("reprotext").experiment_id)}
    tokenize, embed = found["tokenize"], found["embed"]
    assert tokenize.data.metrics["throughput/encode_tokens_per_second"] > 0
    assert tokenize.data.metrics["source/train/documents"] == 80
    assert embed.data.metrics["throughput/tokens_per_second"] > 0 and "wordsim353/covered" in embed.data.metrics
    assert [m.step for m in client.get_metric_history(embed.info.run_id, "train/loss")] == [0, 1]
    assert embed.data.tags["embed.training_sets"] == "source/train,target/train,unlabeled"
    for run in (tokenize, embed):
        assert {Path(f.path).name for f in client.list_artifacts(run.info.run_id, "report")} >= {"report.md"}


def test_missing_split_is_one_line_and_exit_2(tmp_path, template_db):
    cwd = tmp_path / "empty"
    cwd.mkdir()
    (cwd / "params.yaml").write_text(yaml.safe_dump(PARAMS), encoding="utf-8")
    (proc,) = run_stages([(cwd, ["tokenize", *ARGS["tokenize"]])])
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1].startswith("error: data/split/source/train.parquet: not found")
    assert not (cwd / "models").exists() and not (cwd / "data/tokens").exists()
