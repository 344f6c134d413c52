"""The bad-input matrix: every case is one clear line (what, where, how to fix), a non-zero exit, no traceback,
and the outputs of the failing stage left exactly as they were.

Stage cases run one stage command of dvc.yaml in a copy of the session's pipeline (``pipeline`` in
conftest.py) with one thing corrupted; the runs start two at a time, one per core. Params and CLI cases
need no process: they go through the same error boundary in-process.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest
import yaml
from repo_copy import stage_command
from conftest import make_corpus

from reprotext import cli, stage
from reprotext.config import TokenizeConfig, load_section, SECTIONS
from reprotext.tokenizer import train_tokenizer

COPIED = ("dvc.yaml", "params.yaml", "mlflow.db", "stages", "data", "models", "metrics", "reports")


# ---------------------------------------------------------------------------------------------- stage cases


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _garbage(path: Path) -> None:
    path.write_bytes(b"\x00not what you think\xff" * 64)


def _params(repo: Path, section: str, **values) -> None:
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params[section].update(values)
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False, allow_unicode=True))


def _csv(path: Path, rows: list[tuple[str, str]]) -> str:
    pd.DataFrame(rows, columns=["text", "label"]).to_csv(path, index=False)
    return str(path)


GOOD_ROWS = [(f"document {i} about {'ab'[i % 2]}", "ab"[i % 2]) for i in range(20)]


def _mixed_encoding_csv(repo: Path) -> None:
    # utf-8 rows, then one row written by a cp1252 editor: a file of two encodings.
    path = repo / "mixed.csv"
    path.write_bytes("text,label\n".encode() + "naïve café,a\n".encode("utf-8") * 5 + "déjà vu,b\n".encode("cp1252")
                     + "über,b\n".encode("utf-8") * 5)
    _params(repo, "prepare", source=str(path))


def _empty_unlabeled(repo: Path) -> None:
    (repo / "unlabeled.txt").write_text("\n  \n\t\n", encoding="utf-8")
    _params(repo, "prepare", source=_csv(repo / "s.csv", GOOD_ROWS), target=_csv(repo / "t.csv", GOOD_ROWS),
            unlabeled=str(repo / "unlabeled.txt"))


def _corrupt_user_parquet(repo: Path) -> None:
    pd.DataFrame(GOOD_ROWS, columns=["text", "label"]).to_parquet(repo / "user.parquet")
    _truncate(repo / "user.parquet")
    _params(repo, "prepare", source=str(repo / "user.parquet"))


def _other_tokenizer(repo: Path) -> None:
    """Swap models/tokenizer for a valid tokenizer trained on other text."""
    texts, _ = make_corpus(30, seed=7)
    shutil.rmtree(repo / "models/tokenizer")
    train_tokenizer(texts, TokenizeConfig(vocab_size=300), repo / "models/tokenizer")


def _unknown_target_label(repo: Path) -> None:
    path = repo / "data/split/target/dev.parquet"
    frame = pd.read_parquet(path)
    frame.loc[0, "label"] = "label-no-one-trained"
    frame.to_parquet(path, index=False)


def _embeddings_of_another_tokenizer(repo: Path) -> None:
    meta = json.loads((repo / "models/embeddings/meta.json").read_text())
    meta["tokenizer_sha256"] = "0" * 64
    (repo / "models/embeddings/meta.json").write_text(json.dumps(meta))


@dataclass(frozen=True)
class StageCase:
    stage: str
    corrupt: Callable[[Path], None]
    expected: str  # in the error line
    env: tuple[tuple[str, str], ...] = ()
    secret: str = ""  # must appear nowhere in the output


STAGE_CASES = {
    "prepare: CSV with mixed encodings": StageCase(
        "prepare", _mixed_encoding_csv, "mixed.csv, line 7, byte 2: 0xe9 is not valid utf-8; set prepare.encoding"),
    "prepare: empty unlabeled corpus": StageCase(
        "prepare", _empty_unlabeled, "unlabeled.txt (prepare.unlabeled): no documents left after cleaning"),
    "prepare: truncated user parquet": StageCase(
        "prepare", _corrupt_user_parquet, "user.parquet: not a readable Parquet file"),
    "split: truncated prepared parquet": StageCase(
        "split", lambda r: _truncate(r / "data/prepared/source.parquet"),
        "data/prepared/source.parquet: not a readable Parquet file"),
    "split: tracking server unreachable, password in the URI": StageCase(
        "split", lambda r: None, "MLflow tracking server http://ci:***@127.0.0.1:9 is unreachable",
        (("MLFLOW_TRACKING_URI", "http://ci:hunter2-secret@127.0.0.1:9"),), "hunter2-secret"),
    "tokenize: corrupted train split": StageCase(
        "tokenize", lambda r: _garbage(r / "data/split/source/train.parquet"),
        "data/split/source/train.parquet: cannot read a `text` column"),
    "embed: corrupted tokenizer model": StageCase(
        "embed", lambda r: _garbage(r / "models/tokenizer/spm.model"),
        "models/tokenizer/spm.model: not a valid sentencepiece model"),
    "embed: truncated token store": StageCase(
        "embed", lambda r: _truncate(r / "data/tokens/source/train/ids.npy"),
        "data/tokens/source/train: token store missing or unreadable"),
    "train: tokenizer does not match the token ids": StageCase(
        "train", _other_tokenizer, "data/tokens/source/train: token ids were made by tokenizer"),
    "train: embeddings of another tokenizer": StageCase(
        "train", _embeddings_of_another_tokenizer, "models/embeddings: embeddings were aligned to tokenizer 000000000000"),
    "train: params typo": StageCase(
        "train", lambda r: _params(r, "train", dropuot=0.5), "unknown key 'train.dropuot'; did you mean 'dropout'?"),
    "finetune: corrupted checkpoint": StageCase(
        "finetune", lambda r: _truncate(r / "models/train/model.pt"),
        "models/train/model.pt: corrupted or incompatible weights"),
    "finetune: tokenizer does not match the model": StageCase(
        "finetune", _other_tokenizer, "models/train: model was trained with tokenizer"),
    "finetune: a label the model does not know": StageCase(
        "finetune", _unknown_target_label, "data/split/target/dev.parquet: label 'label-no-one-trained' is not among"),
    "evaluate: corrupted fine-tuned checkpoint": StageCase(
        "evaluate", lambda r: _garbage(r / "models/finetune/model.pt"),
        "models/finetune/model.pt: corrupted or incompatible weights"),
}


def _declared(repo: Path, name: str) -> list[Path]:
    spec = yaml.safe_load((repo / "dvc.yaml").read_text())["stages"][name]
    entries = spec.get("outs", []) + spec.get("metrics", []) + spec.get("plots", [])
    return [repo / (e if isinstance(e, str) else next(iter(e))) for e in entries]


def snapshot(paths: list[Path], root: Path) -> dict[str, str]:
    """sha256 of every file under ``paths`` (and of the names of their tmp/old siblings), keyed by path."""
    out = {}
    for path in paths:
        files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
        for f in files:
            out[str(f.relative_to(root))] = hashlib.sha256(f.read_bytes()).hexdigest()
        if path.parent.is_dir():
            out |= {str(p.relative_to(root)): "litter" for p in path.parent.glob(f".{path.name}.*")}
    return out



@dataclass
class Outcome:
    returncode: int
    output: str  # stdout + stderr
    last: str  # the last line of stderr
    before: dict[str, str]
    after: dict[str, str]


def _run_case(base: Path, pipeline: Path, name: str, case: StageCase) -> Outcome:
    repo = base / "".join(c if c.isalnum() else "_" for c in name)
    repo.mkdir(parents=True)
    for entry in COPIED:
        src = pipeline / entry
        (shutil.copytree if src.is_dir() else shutil.copy2)(src, repo / entry)
    case.corrupt(repo)
    outs = _declared(repo, case.stage)
    before = snapshot(outs, repo)
    env = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_TRACKING_URI", "DVC_ROOT", "DVC_EXP_NAME")}
    # The copy's `stages` and this checkout's `reprotext`, even where the venv's editable install points at another one.
    env |= {"PYTHONPATH": os.pathsep.join([str(repo), str(Path(__file__).resolve().parents[1] / "src")]),
            **dict(case.env)}
    proc = subprocess.run(stage_command(repo, case.stage), cwd=repo, env=env, capture_output=True, text=True, timeout=600)
    lines = proc.stderr.strip().splitlines() or [""]
    return Outcome(proc.returncode, proc.stdout + proc.stderr, lines[-1], before, snapshot(outs, repo))


@pytest.fixture(scope="module")
def stage_outcomes(pipeline: Path, tmp_path_factory) -> dict[str, Outcome]:
    base = tmp_path_factory.mktemp("bad_inputs")
    with ThreadPoolExecutor(max_workers=2) as pool:
        futures = {name: pool.submit(_run_case, base, pipeline, name, case) for name, case in STAGE_CASES.items()}
        return {name: f.result() for name, f in futures.items()}


@pytest.mark.slow
@pytest.mark.parametrize("name", STAGE_CASES)
def test_a_stage_refuses_bad_input_in_one_line_and_keeps_its_outputs(stage_outcomes, name):
    case, run = STAGE_CASES[name], stage_outcomes[name]
    assert run.returncode == 2, run.output[-3000:]
    assert "Traceback" not in run.output, run.output[-3000:]
    assert run.last.startswith("error: ") and case.expected in run.last, run.last
    assert run.after == run.before  # byte-identical outputs, and no temp or half-moved output left beside them
    if case.secret:
        assert case.secret not in run.output


# ---------------------------------------------------------------------------------------------- params cases

PARAMS_CASES = {  # case: (section, values, expected in the error line)
    "unknown key with a typo": ("train", {"dropuot": 0.5}, "unknown key 'train.dropuot'; did you mean 'dropout'?"),
    "unknown nested key": ("train", {"bag": {"poolng": "max"}}, "unknown key 'train.bag.poolng'; did you mean 'pooling'?"),
    "wrong type": ("train", {"lr": "fast"}, "train.lr = 'fast'"),
    "wrong type in a list": ("train", {"cnn": {"widths": [3, "four"]}}, "train.cnn.widths.1 = 'four'"),
    "dropout of 1": ("train", {"dropout": 1.0}, "train.dropout = 1.0: Input should be less than 1"),
    "negative dropout": ("finetune", {"dropout": -0.1}, "finetune.dropout = -0.1: Input should be greater than or equal to 0"),
    "split ratios not summing to 1": ("split", {"train": 0.7, "dev": 0.2, "test": 0.2}, "split ratios train+dev+test must sum to 1"),
    "vocab smaller than the special pieces": ("tokenize", {"vocab_size": 200}, "vocab_size must exceed the 262 fixed pieces"),
    "unknown model name lists the valid ones": ("train", {"model": "gpt"},
                                                "train.model = 'gpt': Input should be 'bag', 'ffnn', 'cnn', 'rnn', 'transformer' or 'ensemble'"),
    "ensemble member listed twice": ("train", {"model": "ensemble", "ensemble": {"members": ["bag", "bag"]}},
                                     "ensemble members ['bag', 'bag'] repeat an encoder; list each once"),
    "unknown text encoding": ("prepare", {"encoding": "klingon"}, "prepare.encoding 'klingon' is not a known text encoding"),
    "monitor and mode disagree": ("train", {"monitor": "dev/accuracy", "mode": "min"}, "set train.mode: max"),
}


def _stage_error(fn: Callable[[], object], capsys) -> str:
    """Run ``fn`` behind a stage's error boundary; return its one error line after checking the exit."""
    with pytest.raises(SystemExit) as exit_info:
        stage.run(fn)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    return err.strip()


@pytest.mark.parametrize("name", PARAMS_CASES)
def test_bad_params_stop_the_stage_before_any_work(tmp_path, capsys, name):
    section, values, expected = PARAMS_CASES[name]
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump({section: values}))
    line = _stage_error(lambda: load_section(section, SECTIONS[section], path), capsys)
    assert line.startswith("error: ") and str(path) in line and expected in line, line


@pytest.mark.parametrize("text,expected", [
    ("trian:\n  lr: 0.1\n", "unknown section 'trian'; did you mean 'train'?"),
    ("train: [lr\n", "not valid YAML"),
])
def test_a_broken_params_file_is_one_line(tmp_path, capsys, text, expected):
    path = tmp_path / "params.yaml"
    path.write_text(text)
    line = _stage_error(lambda: load_section("train", SECTIONS["train"], path), capsys)
    assert expected in line and str(path) in line, line


# ------------------------------------------------------------------------------------------------- CLI cases


def _cli_error(argv: list[str], capsys) -> str:
    with pytest.raises(SystemExit) as exit_info:
        cli.main(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert err.startswith("error: ")
    return err.strip()


def test_cli_summary_before_any_run(tmp_path, capsys):
    assert "no evaluation metrics yet; run `make run`" in _cli_error(["summary", "--metrics", str(tmp_path / "m.json")], capsys)


@pytest.mark.parametrize("name,content,expected", [
    ("missing.csv", None, "missing.csv: input file not found"),
    ("docs.xlsx", b"x", "unknown format '.xlsx'; use .csv, .tsv, .parquet or .jsonl"),
    ("docs.csv", b"body\nhello\n", "column 'text' not found; available: body; pass --text-column"),
])
def test_cli_predict_refuses_bad_input_and_writes_nothing(tmp_path, capsys, monkeypatch, name, content, expected):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    if content is not None:
        (tmp_path / name).write_bytes(content)
    out = tmp_path / "preds.csv"
    line = _cli_error(["predict", "--model", str(tmp_path / "model"), "--input", str(tmp_path / name),
                       "--output", str(out)], capsys)
    assert expected in line, line
    assert sorted(p.name for p in tmp_path.iterdir() if p.name != "mlflow.db") == sorted({name} - {"missing.csv"})


@pytest.mark.slow
def test_cli_predict_with_a_corrupted_exported_model(pipeline, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    model = shutil.copytree(pipeline / "models/export/source", tmp_path / "model")
    weights = next(model.rglob("model.pt"))
    _truncate(weights)
    (tmp_path / "docs.csv").write_text("text\nthe shuttle reached orbit\n")
    out = tmp_path / "preds.csv"
    line = _cli_error(["predict", "--model", str(model), "--input", str(tmp_path / "docs.csv"), "--output", str(out)],
                      capsys)
    assert f"cannot load model {str(model)!r}" in line and "model.pt: corrupted or incompatible weights" in line, line
    assert not out.exists()
