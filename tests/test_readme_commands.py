"""Every command README.md shows works as written after `make run`: run here, or covered by a named test.

The commands come from README.md's ```bash blocks (every fenced block there carries a language tag). They run
in a copy of the tiny pipeline after its `dvc repro`, from a shell whose PATH does not hold the venv, with
`.venv` in the copy standing for the venv `make run` creates: what a user types in a fresh clone.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import urllib.request
from pathlib import Path

import pandas as pd
import pytest
import yaml
from beir_tiny import write_beir
from repo_copy import GIT, sh
from servers import free_port, serve

ROOT = Path(__file__).resolve().parents[1]
FENCE = re.compile(r"^```(\S*)\s*$")
LANGUAGES = {"bash", "python", "yaml", "text"}

# Commands this test runs (by prefix; each prefix matches a README command).
RUN_HERE = [
    ".venv/bin/dvc metrics show",
    ".venv/bin/dvc plots show",
    ".venv/bin/reprotext summary",
    "make ui",
    ".venv/bin/reprotext predict --model models:/reprotext@champion --input docs.csv",
    "PATH=$PWD/.venv/bin:$PATH MLFLOW_TRACKING_URI=sqlite:///$PWD/mlflow.db mlflow models serve",
    "curl -s 127.0.0.1:5001/invocations",
    ".venv/bin/dvc commit -f train",
    ".venv/bin/reprotext index --model models/finetune/dual_encoder --input docs.csv",
    ".venv/bin/reprotext search --index my-index",
    ".venv/bin/reprotext report --baseline origin/main",
    ".venv/bin/reprotext gate --baseline origin/main",
    "BASELINE=origin/main .github/scripts/retrain.sh",
    "PATH=$PWD/.venv/bin:$PATH .venv/bin/dvc exp run -S train.lr",
    ".venv/bin/dvc exp show",
    "make retrieval RETRIEVAL_DATA=path/to/beir-folder",
    ".venv/bin/reprotext index --method hybrid --input data/retrieval/beir",
    ".venv/bin/reprotext search --index sci-index -k 10",
    ".venv/bin/reprotext search --index sci-index --method bm25 --queries - --timing",
]

# Commands this test does not run, why, and the test that covers them.
NOT_RUN_HERE = {
    "make run": "sets up the venv and runs `dvc repro`: this test's `pipeline` fixture is that `dvc repro` "
                "(tests/conftest.py) and tests/test_pipeline.py checks its outputs and `reprotext summary`",
    "make test": "the test suite itself (tests/conftest.py is its configuration)",
    "make lecture": "about 30 minutes; tests/test_lecture.py runs the same sweep with `--smoke`",
    "make bench": "up to 100 minutes; tests/test_bench.py runs `bench/run.py --smoke`, every code path of it",
    "mlflow server --backend-store-uri postgresql": "needs a PostgreSQL server and a bucket; "
                      "tests/test_team_setup.py runs it on a local PostgreSQL",
    "export MLFLOW_TRACKING_URI=http://mlflow-host:5000": "points at the team server above; "
                      "tests/test_team_setup.py runs the pipeline against it",
    "PATH=$PWD/.venv/bin:$PATH .venv/bin/dvc exp run -S multitask.": "the `dvc exp run -S` form run here for "
                      "train.lr; what the two multitask switches do is tests/test_multitask.py's (the stage "
                      "with enabled: false, the sampling rules' proportions)",
    ".venv/bin/torchrun --nnodes 2": "needs two machines; tests/test_multinode.py runs it with two torchrun "
                      "launchers on loopback",
}

RETRIEVAL_TINY = {"vocab": {"vocab_size": 400}, "word2vec": {"dim": 16, "epochs": 1},
                  "dssm": {"epochs": 1, "batch_size": 16}}

# A string each covering test holds, so a reason above cannot outlive what it names.
COVERAGE = {
    "tests/conftest.py": 'sh(["dvc", "repro"], dest)',
    "tests/test_pipeline.py": '"summary"',
    "tests/test_lecture.py": '"--smoke"',
    "tests/test_bench.py": '"--smoke"',
    "tests/test_team_setup.py": '"server", "--backend-store-uri", postgres',
    "tests/test_multinode.py": "torchrun",
    "tests/test_multitask.py": '{"multitask": {"enabled": False}}',
}


def readme_blocks(text: str) -> list[tuple[str, list[str]]]:
    """README's fenced blocks as (language tag, lines)."""
    blocks, lang, lines = [], None, []
    for number, line in enumerate(text.splitlines(), 1):
        match = FENCE.match(line)
        if not match:
            if lang is not None:
                lines.append(line)
        elif lang is None:
            lang, lines = match.group(1), []
            assert lang in LANGUAGES, f"README.md:{number}: a code block without a language tag in {LANGUAGES}"
        else:
            assert not match.group(1), f"README.md:{number}: a closing fence with a tag"
            blocks.append((lang, lines))
            lang = None
    assert lang is None, "README.md: an unclosed code block"
    return blocks


def commands(text: str) -> list[str]:
    """The shell commands of the ```bash blocks: continuation lines joined, trailing `# comments` dropped."""
    out, pending = [], ""
    for lang, lines in readme_blocks(text):
        if lang != "bash":
            continue
        for line in lines:
            line = re.sub(r"(^|\s+)#\s.*$", "", line).rstrip()
            if line.endswith("\\"):
                pending += line[:-1].strip() + " "
                continue
            command = (pending + line.strip()).strip()
            pending = ""
            if command:
                out.append(" ".join(command.split()))
        assert not pending, f"README.md: a ```bash block ends in a continued line: {pending}"
    return out


README_COMMANDS = commands((ROOT / "README.md").read_text(encoding="utf-8"))


def readme_command(prefix: str) -> str:
    (match,) = [c for c in README_COMMANDS if c.startswith(prefix)]
    return match


def test_parser_joins_continuations_and_strips_comments():
    text = "```bash\na --x 1 \\\n  --y 2   # why\n# only a comment\nb 'c'\n```\n\n```yaml\nk: v\n```\n"
    assert commands(text) == ["a --x 1 --y 2", "b 'c'"]
    with pytest.raises(AssertionError, match="without a language tag"):
        readme_blocks("```\nls\n```\n")


def test_every_readme_command_is_run_or_classified():
    assert len(README_COMMANDS) >= 20
    known = RUN_HERE + list(NOT_RUN_HERE)
    unclassified = [c for c in README_COMMANDS if not any(c.startswith(p) for p in known)]
    assert not unclassified, f"README commands neither run by this test nor in NOT_RUN_HERE: {unclassified}"
    for prefix in RUN_HERE:  # each names one command, which runs below
        matches = [c for c in README_COMMANDS if c.startswith(prefix)]
        assert len(matches) == 1, f"{prefix!r} matches {len(matches)} README commands: {matches}"
    for prefix in NOT_RUN_HERE:  # a stale entry is an error too
        assert any(c.startswith(prefix) for c in README_COMMANDS), f"{prefix!r} matches no README command"
    both = [c for c in README_COMMANDS if any(c.startswith(p) for p in RUN_HERE)
            and any(c.startswith(p) for p in NOT_RUN_HERE)]
    assert not both, f"README commands both run here and classified as not run: {both}"


def test_every_reason_names_a_test_that_covers_it():
    for prefix, reason in NOT_RUN_HERE.items():
        named = re.findall(r"tests/\w+\.py", reason)
        assert named, f"{prefix}: the reason names no test"
        for rel in named:
            assert rel in COVERAGE, f"{prefix}: {rel} has no entry in COVERAGE"
    for rel, snippet in COVERAGE.items():
        assert snippet in (ROOT / rel).read_text(encoding="utf-8"), f"{rel} no longer holds {snippet!r}"


# --- the commands, run as written -------------------------------------------------------------------------------

def _user_path() -> str:
    """The PATH without this interpreter's venv: a user's shell before activating anything."""
    bin_dir = Path(sys.executable).parent.resolve()
    return os.pathsep.join(p for p in os.environ["PATH"].split(os.pathsep) if p and Path(p).resolve() != bin_dir)


def run(command: str, repo: Path, check: bool = True, timeout: int = 600) -> subprocess.CompletedProcess:
    return sh(["bash", "-c", command], repo, check=check, extra_env={"PATH": _user_path()}, timeout=timeout)


@pytest.fixture(scope="module")
def repo(pipeline: Path, tmp_path_factory) -> Path:
    """The tiny pipeline after `dvc repro`, its `.venv` this interpreter's, `origin` a bare clone of it."""
    base = tmp_path_factory.mktemp("readme")
    repo = Path(shutil.copytree(pipeline, base / "repo", symlinks=True))
    # `.venv` as `make run` leaves it: the venv's own files (linked) and a fresh install stamp, so `make ui`
    # finds the setup done and never installs anything.
    venv = repo / ".venv"
    venv.mkdir()
    for entry in Path(sys.prefix).iterdir():
        if entry.name != ".installed":
            (venv / entry.name).symlink_to(entry, target_is_directory=entry.is_dir())
    (venv / ".installed").touch()
    sh(["git", "clone", "-q", "--bare", str(repo), str(base / "origin.git")], base)
    sh(["git", "remote", "add", "origin", str(base / "origin.git")], repo)
    sh(["git", "fetch", "-q", "origin"], repo)
    # A tiny BEIR collection for `make retrieval`, and tiny retrieval params (as tests/test_retrieval_dvc.py).
    write_beir(base / "beir")
    params = yaml.safe_load((repo / "retrieval/params.yaml").read_text())
    for section, values in RETRIEVAL_TINY.items():
        params[section].update(values)
    (repo / "retrieval/params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    # docs.csv, the README's input to predict and index: a `text` column (and `id`).
    pd.DataFrame({"id": ["d1", "d2", "d3"],
                  "text": ["the shuttle reached orbit", "crude oil output rose after opec met",
                           "the hockey team won the playoffs"]}).to_csv(repo / "docs.csv", index=False)
    return repo


PYTHON_SNIPPETS = ["\n".join(lines) for lang, lines in readme_blocks((ROOT / "README.md").read_text(encoding="utf-8"))
                   if lang == "python"]


def test_readme_has_python_snippets_to_run():
    assert PYTHON_SNIPPETS, "README.md has no ```python block: drop test_python_snippets_run"


@pytest.mark.slow
@pytest.mark.parametrize("snippet", PYTHON_SNIPPETS, ids=lambda s: s.splitlines()[-1][:40])
def test_python_snippets_run(repo, snippet):
    """Each ```python block runs as written in the pipeline after `dvc repro`; its last line, an expression, prints."""
    *body, last = snippet.strip().splitlines()
    code = "\n".join(body + [f"print(repr({last}))"])
    proc = subprocess.run([sys.executable, "-c", code], cwd=repo, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip(), "the snippet's last expression printed nothing"
    if "multitask" in snippet:  # the multitask pyfunc: one row per input, each labelled within its own task
        assert "target" in proc.stdout and "source" in proc.stdout and "label" in proc.stdout


def _labels(repo: Path) -> list[str]:
    return json.loads((repo / "models/train/model.json").read_text())["config"]["labels"]


@pytest.mark.slow
def test_metrics_plots_and_summary(repo):
    out = run(readme_command(".venv/bin/dvc metrics show"), repo).stdout
    evaluate = json.loads((repo / "metrics/evaluate.json").read_text())
    assert "metrics/evaluate.json" in out and "metrics/train.json" in out
    assert f"{evaluate['source']['test']['accuracy']:.5f}".rstrip("0")[:5] in out

    shutil.rmtree(repo / "dvc_plots", ignore_errors=True)
    run(readme_command(".venv/bin/dvc plots show"), repo)
    html = (repo / "dvc_plots/index.html").read_text()
    assert "train_history.csv" in html and "confusion" in html

    out = run(readme_command(".venv/bin/reprotext summary"), repo).stdout
    for role in ("source", "target"):
        assert f"test accuracy {evaluate[role]['test']['accuracy']:.4f}" in out
        assert f"macro-F1 {evaluate[role]['test']['macro_f1']:.4f}" in out


@pytest.mark.slow
def test_make_ui_answers_on_localhost_at_the_link_it_prints(repo, tmp_path):
    command = readme_command("make ui")
    port = free_port()  # `PORT ?= 5000` in the Makefile: another process may hold 5000
    log = tmp_path / "ui.log"
    with serve(["bash", "-c", command], f"http://127.0.0.1:{port}/health", repo, log,
               extra_env={"PATH": _user_path(), "PORT": str(port)}):
        link = re.search(r"The pipeline's runs: (\S+)", log.read_text()).group(1)
        assert link.startswith(f"http://127.0.0.1:{port}/#/experiments/")
        with urllib.request.urlopen(link, timeout=30) as resp:
            assert resp.status == 200 and b"<html" in resp.read().lower()
    assert not any(p.name == "pip" for p in (repo / ".venv").iterdir())  # nothing was installed


@pytest.mark.slow
def test_predict_serve_and_curl(repo):
    run(readme_command(".venv/bin/reprotext predict"), repo)
    preds = pd.read_csv(repo / "preds.csv")
    assert preds["id"].tolist() == ["d1", "d2", "d3"] and set(preds["label"]) <= set(_labels(repo))

    port = free_port()
    serve_cmd = readme_command("PATH=$PWD/.venv/bin:$PATH MLFLOW_TRACKING_URI")
    curl_cmd = readme_command("curl -s 127.0.0.1:5001/invocations")
    assert " -p 5001" in serve_cmd
    log = repo.parent / "serve.log"
    with serve(["bash", "-c", serve_cmd.replace(" -p 5001", f" -p {port}")], f"http://127.0.0.1:{port}/ping", repo,
               log, extra_env={"PATH": _user_path()}):
        out = run(curl_cmd.replace("127.0.0.1:5001", f"127.0.0.1:{port}"), repo).stdout
    (pred,) = json.loads(out)["predictions"]
    assert pred["label"] in _labels(repo)
    assert abs(sum(pred[f"prob_{name}"] for name in _labels(repo)) - 1) < 1e-4


@pytest.mark.slow
def test_index_and_search_docs_csv(repo):
    run(readme_command(".venv/bin/reprotext index --model models/finetune/dual_encoder"), repo)
    assert (repo / "my-index").is_dir()
    out = run(readme_command(".venv/bin/reprotext search --index my-index"), repo).stdout
    lines = out.strip().splitlines()
    assert len(lines) == 3  # -k 10 over three documents: all of them, ranked
    assert {i for i in ("d1", "d2", "d3") if any(i in line for line in lines)} == {"d1", "d2", "d3"}


@pytest.mark.slow
def test_retrieval_index_and_search(repo):
    command = readme_command("make retrieval RETRIEVAL_DATA=path/to/beir-folder")
    run(command.replace("path/to/beir-folder", str(repo.parent / "beir")), repo)
    hybrid = json.loads((repo / "metrics/retrieval/hybrid.json").read_text())
    assert 0.0 < hybrid["test"]["hybrid"]["ndcg_at_10"] <= 1.0
    run(readme_command(".venv/bin/reprotext index --method hybrid"), repo)
    assert (repo / "sci-index").is_dir()
    out = run(readme_command(".venv/bin/reprotext search --index sci-index -k 10"), repo).stdout
    assert len(out.strip().splitlines()) == 10
    # claims.txt: one query a line, as `--queries -` reads them from stdin.
    (repo / "claims.txt").write_text("bone fracture healing\nstatins lower the risk of stroke\n")
    proc = run(readme_command(".venv/bin/reprotext search --index sci-index --method bm25"), repo)
    assert [line for line in proc.stdout.splitlines() if line.startswith("query: ")] == [
        "query: bone fracture healing", "query: statins lower the risk of stroke"]
    assert "2 queries (bm25), latency median" in proc.stderr


@pytest.mark.slow
def test_dvc_commit_of_train_on_machine_0(repo):
    run(readme_command(".venv/bin/dvc commit -f train"), repo)
    status = run(".venv/bin/dvc status --json train", repo).stdout
    assert json.loads(status) == {}


@pytest.mark.slow
def test_report_gate_and_retrain_against_origin_main(repo):
    # origin/main holds the committed metrics of the last full run: the tiny run differs from them.
    report = run(readme_command(".venv/bin/reprotext report --baseline origin/main"), repo).stdout
    committed = json.loads(sh(["git", "show", "origin/main:metrics/evaluate.json"], repo).stdout)
    ours = json.loads((repo / "metrics/evaluate.json").read_text())
    assert "## Metrics against `origin/main`" in report
    row = next(line for line in report.splitlines() if "evaluate.json:source/test/macro_f1 |" in line)  # not multitask/...
    for metrics in (committed, ours):
        assert f"{metrics['source']['test']['macro_f1']:.4f}" in row

    # The tiny run, committed and pushed, is the baseline: no regression, the gate and the CI steps pass.
    sh(["git", "add", "-A"], repo)
    sh([*GIT, "commit", "-qm", "tiny run"], repo)
    sh(["git", "push", "-q", "origin", "main"], repo)
    sh(["git", "fetch", "-q", "origin"], repo)
    gate = run(readme_command(".venv/bin/reprotext gate --baseline origin/main"), repo).stdout
    assert "| ok |" in gate and "gate: passed: no regression of test/macro_f1 beyond 0.005" in gate
    retrain = run(readme_command("BASELINE=origin/main .github/scripts/retrain.sh"), repo).stdout
    assert "==> dvc repro" in retrain and "gate: passed" in retrain
    assert "## Metrics against `origin/main`" in (repo / "retrain-report.md").read_text()


@pytest.mark.slow
def test_dvc_exp_run_and_show(repo):
    """Last: the experiment changes the workspace's params and outputs."""
    before = (repo / "metrics/train.json").read_text()
    out = run(readme_command("PATH=$PWD/.venv/bin:$PATH .venv/bin/dvc exp run -S train.lr"), repo, timeout=900).stdout
    name = re.search(r"Ran experiment\(s\): (\S+)", out).group(1)
    params = yaml.safe_load((repo / "params.yaml").read_text())["train"]
    assert params["lr"] == 0.001 and params["dropout"] == 0.5
    assert (repo / "metrics/train.json").read_text() != before  # train ran again, with the new params
    show = run(readme_command(".venv/bin/dvc exp show"), repo).stdout
    assert {"workspace", "main"} <= {line.split()[0] for line in show.splitlines() if line.strip()}
    assert any(f"[{name}]" in line for line in show.splitlines()), show
