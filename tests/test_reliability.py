"""Reliability: atomic outputs under SIGKILL, an unreachable tracking server, determinism, huge documents,
and safe defaults.

The slow tests reuse the session's pipeline (``pipeline`` in conftest.py): the kill test copies it, kills
`dvc repro --force` inside tokenize, embed and train in turn, finishes the run, and compares it with the
uninterrupted first run, which is also the determinism check (two forced runs, same seeds, same hashes).
"""
from __future__ import annotations

import json
import logging
import os
import random
import re
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import mlflow
import pandas as pd
import pytest
import torch
import yaml
from mlflow.tracking import MlflowClient
from repo_copy import env as repo_env
from test_bad_inputs import snapshot

from reprotext.errors import ArtifactError, ReprotextError
from reprotext.tracking import FALLBACK_ENV, best_effort, stage_run

ROOT = Path(__file__).resolve().parents[1]
DETERMINISTIC = ("prepare", "split", "tokenize", "embed")  # dvc.lock out hashes must repeat


# --------------------------------------------------------------------------------- atomic writes under SIGKILL

_KILLED_WRITER = """
import os, signal, sys
from pathlib import Path
from reprotext.io import atomic_dir, atomic_file
out = Path(sys.argv[1])
with atomic_dir(out / "model") as tmp:
    (tmp / "weights").write_text("new half")
    if sys.argv[2] == "dir":
        os.kill(os.getpid(), signal.SIGKILL)
with atomic_file(out / "metrics.json") as tmp:
    tmp.write_text('{"new": ')
    os.kill(os.getpid(), signal.SIGKILL)
"""


@pytest.mark.parametrize("where", ["dir", "file"])
def test_a_sigkill_mid_write_leaves_the_old_output_and_the_next_run_sweeps_the_litter(tmp_path, where):
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "weights").write_text("old")
    (tmp_path / "metrics.json").write_text('{"old": 1}')
    proc = subprocess.run([sys.executable, "-c", _KILLED_WRITER, str(tmp_path), where], capture_output=True)
    assert proc.returncode == -signal.SIGKILL
    assert (tmp_path / "metrics.json").read_text() == '{"old": 1}'
    assert (tmp_path / "model" / "weights").read_text() == ("old" if where == "dir" else "new half")
    assert any(".tmp-" in p.name for p in tmp_path.iterdir())  # what the killed process left

    from reprotext.io import atomic_dir, write_json

    with atomic_dir(tmp_path / "model") as tmp:
        (tmp / "weights").write_text("new")
    write_json(tmp_path / "metrics.json", {"new": 1})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["metrics.json", "model"]


# ------------------------------------------------------------------------------------- tracking server trouble


def _closed_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def stage_dir(tmp_path, monkeypatch) -> Path:
    (tmp_path / "dvc.yaml").write_text("stages:\n  a:\n    cmd: x\n    metrics: [{metrics/a.json: {cache: false}}]\n")
    (tmp_path / "metrics").mkdir()
    monkeypatch.chdir(tmp_path)
    for var in ("MLFLOW_TRACKING_URI", "DVC_ROOT", "DVC_EXP_NAME", FALLBACK_ENV):
        monkeypatch.delenv(var, raising=False)
    return tmp_path


def test_an_unreachable_server_with_the_local_fallback_logs_to_sqlite(stage_dir, monkeypatch, caplog):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://bob:hunter2@127.0.0.1:{_closed_port()}")
    monkeypatch.setenv(FALLBACK_ENV, "local")
    with caplog.at_level(logging.WARNING, logger="reprotext.tracking"):
        with stage_run("a", {"k": 1}) as run_mlflow:
            run_mlflow.log_metric("dev/loss", 0.5)
            run_id = mlflow.active_run().info.run_id
    run = MlflowClient(f"sqlite:///{stage_dir}/mlflow.db").get_run(run_id)
    assert run.info.status == "FINISHED" and run.data.metrics["dev/loss"] == 0.5
    assert "http://bob:***@127.0.0.1" in caplog.text and "unreachable" in caplog.text
    assert "hunter2" not in caplog.text


def test_a_fallback_value_that_is_not_understood_is_an_error(stage_dir, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://127.0.0.1:{_closed_port()}")
    monkeypatch.setenv(FALLBACK_ENV, "yes")
    with pytest.raises(ReprotextError, match=f"{FALLBACK_ENV}='yes' is not understood; set it to 'local'"):
        with stage_run("a", {}):
            pass


def test_the_unreachable_error_names_the_fallback_and_hides_the_password(stage_dir, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://bob:hunter2@127.0.0.1:{_closed_port()}")
    with pytest.raises(ReprotextError) as info:
        with stage_run("a", {}):
            pytest.fail("the stage body must not start")
    assert "http://bob:***@127.0.0.1" in str(info.value) and f"{FALLBACK_ENV}=local" in str(info.value)
    assert "hunter2" not in str(info.value)


def test_a_store_that_dies_after_the_outputs_are_written_does_not_fail_the_stage(stage_dir, monkeypatch, caplog):
    """The model is saved before the last MLflow calls; their failure warns and the stage succeeds."""
    from reprotext import tracking

    def dead(*args, **kwargs):
        raise mlflow.exceptions.MlflowException("API request to http://bob:hunter2@mlflow:5000 failed: refused")

    with caplog.at_level(logging.WARNING, logger="reprotext.tracking"):
        with stage_run("a", {"k": 1}) as run_mlflow:
            (stage_dir / "model.pt").write_text("trained")
            (stage_dir / "metrics/a.json").write_text('{"acc": 1}')
            monkeypatch.setattr(run_mlflow, "log_metrics", dead)
            monkeypatch.setattr(tracking.Tracker, "finish", dead)
            with best_effort("the model was saved"):
                run_mlflow.log_metrics({"acc": 1.0})
                pytest.fail("the rest of the block is skipped")
    assert (stage_dir / "model.pt").read_text() == "trained"
    assert caplog.text.count("MLflow logging failed after") == 2
    assert "hunter2" not in caplog.text and "bob:***@mlflow" in caplog.text


def test_train_saves_the_model_before_its_last_mlflow_calls_and_guards_them():
    source = (ROOT / "stages/train.py").read_text()
    saved, guarded = source.index("save_model(model, tmp"), source.index("with best_effort(")
    assert saved < guarded < source.index("mlflow.log_metrics(") and "mlflow.log_artifact" not in source[:guarded]


# ------------------------------------------------------------------------------------------------ safe defaults


def test_servers_bind_to_loopback_by_default():
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"^HOST\s*\?=\s*127\.0\.0\.1$", makefile, re.M) and "--host $(HOST)" in makefile
    readme = (ROOT / "README.md").read_text()
    assert "mlflow models serve -m models:/reprotext@champion --env-manager local -h 127.0.0.1" in readme
    for path in [*(ROOT / "src/reprotext").rglob("*.py"), *(ROOT / "stages").glob("*.py")]:
        assert "0.0.0.0" not in path.read_text(), path


def test_no_pickle_between_stages_and_checkpoints_load_weights_only():
    for path in [*(ROOT / "src/reprotext").rglob("*.py"), *(ROOT / "stages").glob("*.py")]:
        text = path.read_text()
        for call in re.findall(r"torch\.load\([^)]*\)", text):
            assert "weights_only=True" in call, f"{path}: {call}"
        assert not re.search(r"pickle\.(dump|load)s?\(|allow_pickle=True|to_pickle|read_pickle|joblib", text), path


class _Payload:  # anything that is not a tensor or a plain container
    def __reduce__(self):
        return (print, ("this ran at load time",))


def test_a_checkpoint_holding_code_is_refused(tmp_path, tokenizer, capsys):
    from reprotext.models import Classifier, ModelConfig, load_model, save_model

    config = ModelConfig(model="bag", vocab_size=tokenizer.vocab_size, embedding_dim=8, labels=("a", "b"),
                         tokenizer_sha256=tokenizer.sha256, encoder={"pooling": "mean"})
    save_model(Classifier(config), tmp_path, {})
    state = torch.load(tmp_path / "model.pt", weights_only=True)
    torch.save({**state, "evil": _Payload()}, tmp_path / "model.pt")
    with pytest.raises(ArtifactError, match="model.pt: corrupted or incompatible weights"):
        load_model(tmp_path, tokenizer.sha256)
    assert "this ran at load time" not in capsys.readouterr().out


# -------------------------------------------------------------------------------------- a 50 MB single document


@pytest.mark.slow
def test_a_50_mb_document_is_prepared_split_and_tokenized_whole(tmp_path):
    """No param bounds document size: a huge document is kept, cut into chunks to train the tokenizer and to
    encode, and truncated to train.max_len only by the models."""
    from reprotext.config import PrepareConfig, SplitConfig, TokenizeConfig
    from reprotext.data.prepare import prepare_dataset
    from reprotext.data.split import split_frame
    from reprotext.tokenizer import train_tokenizer

    rng = random.Random(0)
    words = "orbit rocket launch planet moon goal match season engine wheel the of and".split()
    big = " ".join(rng.choice(words) for _ in range(9_000_000))[:50_000_000].strip()
    rows = [(big, "space", "train")] + [(f"{label} doc {i} " + " ".join(rng.choice(words) for _ in range(12)), label,
                                         "test" if i % 5 == 0 else "train")
                                        for label in ("space", "sport", "cars") for i in range(10)]
    pd.DataFrame(rows, columns=["text", "label", "part"]).to_csv(tmp_path / "docs.csv", index=False)
    cfg = PrepareConfig(source=str(tmp_path / "docs.csv"), split_column="part")
    frame, stats = prepare_dataset(cfg.source, cfg, "source")
    assert stats.rows_kept == 31 and frame["text"].str.len().max() == len(big)
    parts = split_frame(frame, SplitConfig(method="predefined"), where="docs.csv").parts
    home = next(name for name, part in parts.items() if (part["text"].str.len() == len(big)).any())
    assert home in ("train", "dev")
    texts = parts["train"]["text"].tolist()
    tok = train_tokenizer(texts, TokenizeConfig(vocab_size=300, input_sentence_size=2000), tmp_path / "tok")
    meta = json.loads((tmp_path / "tok/meta.json").read_text())
    assert meta["training"]["long_documents"] == (1 if home == "train" else 0)
    start = time.monotonic()
    arr = tok.encode_array(parts[home]["text"].tolist(), threads=2)
    longest = int(arr.lengths().max())
    assert longest > 5_000_000  # every word of it, ~1 piece per word
    head = tok.decode(arr[int(arr.lengths().argmax())][:500].tolist())
    assert len(head) > 500 and big.startswith(head)
    assert time.monotonic() - start < 120


def test_long_texts_encode_in_chunks_to_the_same_ids(tokenizer, monkeypatch):
    from reprotext import tokenizer as tokenizer_module

    text = " ".join(["the rocket reached orbit", "Привет мир", "日本語のテキスト", "emoji 😀 ok"] * 40)
    whole = tokenizer.encode([text, "short"])
    monkeypatch.setattr(tokenizer_module, "LONG_TEXT", 100)
    monkeypatch.setattr(tokenizer_module, "LONG_CHUNK", 64)
    assert tokenizer.encode([text, "short"]) == whole


# ------------------------------------------------------------------ SIGKILL inside dvc repro, and determinism


def _outs(repo: Path, name: str) -> list[Path]:
    spec = yaml.safe_load((repo / "dvc.yaml").read_text())["stages"][name]
    entries = spec.get("outs", []) + spec.get("metrics", []) + spec.get("plots", [])
    return [repo / (e if isinstance(e, str) else next(iter(e))) for e in entries]


def _lock_outs(repo: Path) -> dict[str, dict[str, str]]:
    lock = yaml.safe_load((repo / "dvc.lock").read_text())["stages"]
    return {name: {o["path"]: o["md5"] for o in lock[name].get("outs", [])} for name in lock}


def _running_stage(repo: Path, name: str, since_ms: int) -> bool:
    """Whether the stage's MLflow run has started (its heavy work is under way)."""
    try:
        with sqlite3.connect(f"file:{repo / 'mlflow.db'}?mode=ro", uri=True, timeout=1) as db:
            row = db.execute("select count(*) from runs where name = ? and status = 'RUNNING' and start_time >= ?",
                             (name, since_ms)).fetchone()
        return bool(row and row[0])
    except sqlite3.Error:
        return False


def _kill_during(repo: Path, args: list[str], name: str) -> float:
    """Start `dvc repro <args>`, SIGKILL its whole process group once ``name`` is under way; the seconds it ran."""
    since = int(time.time() * 1000)
    start = time.monotonic()
    proc = subprocess.Popen(["dvc", "repro", *args], cwd=repo, env=repo_env(), stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        while not _running_stage(repo, name, since):
            assert proc.poll() is None, f"dvc repro {args} ended before {name} started: {proc.stderr.read()[-2000:]}"
            assert time.monotonic() - start < 300, f"{name} did not start"
            time.sleep(0.1)
        time.sleep(0.5)  # well inside the stage's work
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    deadline = time.monotonic() + 30  # SIGKILL is delivered at once; dying takes a moment
    while _stages_in(repo) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _stages_in(repo) == [], "the stage outlived the kill of dvc's process group"
    return time.monotonic() - start


def _stages_in(repo: Path) -> list[int]:
    """Stage processes (`python -m stages.<name>`) working in ``repo``."""
    found = []
    for proc in Path("/proc").iterdir():
        try:
            if (proc.name.isdigit() and Path(os.readlink(proc / "cwd")) == repo
                    and b"stages." in (proc / "cmdline").read_bytes()):
                found.append(int(proc.name))
        except OSError:
            continue
    return found


@pytest.fixture(scope="module")
def killed_then_rerun(pipeline: Path, tmp_path_factory) -> dict:
    """A copy of the pipeline, its stages up to train forced to run again, killed inside tokenize, embed and train."""
    repo = tmp_path_factory.mktemp("killed") / "repo"
    subprocess.run(["cp", "-a", str(pipeline), str(repo)], check=True)
    reference = {name: snapshot(_outs(pipeline, name), pipeline) for name in DETERMINISTIC + ("train",)}
    seen = {}
    for args, name in ((["--force"], "tokenize"), (["--force", "--downstream", "tokenize"], "embed"),
                       (["--force", "--downstream", "embed"], "train")):
        _kill_during(repo, args, name)
        seen[name] = snapshot(_outs(repo, name), repo)
    # train alone: if it repeats its outputs byte for byte, `dvc status` finds finetune and evaluate up to date.
    final = subprocess.run(["dvc", "repro", "--force", "--single-item", "train"], cwd=repo, env=repo_env(),
                           capture_output=True, text=True, timeout=900)
    assert final.returncode == 0, final.stderr[-3000:]
    status = subprocess.run(["dvc", "status", "--json", "dvc.yaml"], cwd=repo, env=repo_env(), capture_output=True, text=True)
    return {"repo": repo, "reference": reference, "seen": seen, "status": status.stdout}


@pytest.mark.slow
@pytest.mark.parametrize("name", ["tokenize", "embed", "train"])
def test_a_killed_stage_leaves_each_output_absent_or_whole(killed_then_rerun, pipeline, name):
    seen, reference = killed_then_rerun["seen"][name], killed_then_rerun["reference"][name]
    for out in (str(p.relative_to(pipeline)) for p in _outs(pipeline, name)):
        def under(files: dict[str, str]) -> dict[str, str]:
            return {p: d for p, d in files.items() if p == out or p.startswith(out + "/")}

        assert under(seen) in ({}, under(reference)), f"{name}: {out} is neither absent nor a complete output"


@pytest.mark.slow
def test_the_rerun_after_kills_matches_the_uninterrupted_run(killed_then_rerun, pipeline):
    repo = killed_then_rerun["repo"]
    got, want = _lock_outs(repo), _lock_outs(pipeline)
    for name in (*DETERMINISTIC, "train"):  # two forced runs with the same seeds: the same bytes
        assert got[name] == want[name], name
    for name in (*DETERMINISTIC, "train"):
        metrics = f"metrics/{name}.json"
        assert (repo / metrics).read_text() == (pipeline / metrics).read_text(), metrics
    litter = [p for top in ("data", "models", "reports", "metrics") for p in (repo / top).rglob("*")
              if re.search(r"\.(tmp|old)-\d+$", p.name)]
    assert litter == []
    assert json.loads(killed_then_rerun["status"]) == {}  # finetune and evaluate: their inputs came back the same
