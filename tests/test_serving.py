"""`mlflow models serve` on the registered champion answers real requests (a real server, no mocks)."""
from __future__ import annotations

import json
import os
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pandas as pd
import pytest
from repo_copy import sh
from servers import free_port, serve

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[1]


def _post(url: str, body: bytes) -> tuple[int, dict]:
    req = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"}, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read() or b"{}")


def readme_serve_command() -> str:
    """The README's `mlflow models serve` command, its continued lines joined."""
    lines = (ROOT / "README.md").read_text(encoding="utf-8").splitlines()
    end = next(i for i, line in enumerate(lines) if "mlflow models serve -m" in line)
    start = end
    while start > 0 and lines[start - 1].endswith("\\"):
        start -= 1
    return " ".join(line.rstrip("\\").strip() for line in lines[start:end + 1])


@pytest.fixture(scope="module")
def server(pipeline: Path, tmp_path_factory):
    """The README's command as a user runs it: in the repository, `.venv` there, the venv not on the PATH."""
    port = free_port()
    command = readme_serve_command()
    assert " -p 5001" in command, command
    venv = pipeline / ".venv"
    venv.symlink_to(sys.prefix, target_is_directory=True)
    bin_dir = Path(sys.executable).parent.resolve()
    path = os.pathsep.join(p for p in os.environ["PATH"].split(os.pathsep) if p and Path(p).resolve() != bin_dir)
    log = tmp_path_factory.mktemp("serve") / "serve.log"
    try:
        with serve(["bash", "-c", command.replace(" -p 5001", f" -p {port}")], f"http://127.0.0.1:{port}/ping",
                   pipeline, log, extra_env={"PATH": path}):
            yield f"http://127.0.0.1:{port}/invocations"
    finally:
        venv.unlink()


def _labels(pipeline: Path) -> list[str]:
    return json.loads((pipeline / "models/train/model.json").read_text())["config"]["labels"]


def test_records_get_labels_and_probabilities(server, pipeline):
    texts = ["the shuttle reached orbit after launch", "windows crashes when the driver loads"]
    status, body = _post(server, json.dumps({"dataframe_records": [{"text": t} for t in texts]}).encode())
    assert status == 200, body
    preds = pd.DataFrame(body["predictions"])
    labels = _labels(pipeline)
    assert len(preds) == 2 and set(preds["label"]) <= set(labels)
    probs = preds[[f"prob_{name}" for name in labels]]
    assert probs.sum(axis=1).round(4).tolist() == [1.0, 1.0]
    assert (probs.idxmax(axis=1).str.removeprefix("prob_") == preds["label"]).all()


def test_a_plain_list_of_strings_works(server):
    status, body = _post(server, json.dumps({"inputs": ["god and religion", "hockey playoffs"]}).encode())
    assert status == 200 and len(body["predictions"]) == 2


@pytest.mark.parametrize("payload,words", [
    (b"not json at all", "json"),
    (json.dumps({"dataframe_records": [{"body": "no text column"}]}).encode(), "text"),
])
def test_malformed_requests_get_a_4xx_with_a_message(server, payload, words):
    status, body = _post(server, payload)
    assert 400 <= status < 500
    assert words in body.get("message", "").lower()


def test_cli_predict_uses_the_same_champion(pipeline, tmp_path):
    src = tmp_path / "in.csv"
    pd.DataFrame({"id": [1, 2], "text": ["the shuttle reached orbit", "a new graphics card"]}).to_csv(src, index=False)
    out = tmp_path / "out.csv"
    sh(["reprotext", "predict", "--model", "models:/reprotext@champion", "--input", str(src), "--output", str(out)],
       pipeline)
    preds = pd.read_csv(out)
    assert preds["id"].tolist() == [1, 2] and set(preds["label"]) <= set(_labels(pipeline))
    bad = sh(["reprotext", "predict", "--model", "models:/reprotext@champion", "--input", str(src), "--output",
              str(out), "--text-column", "body"], pipeline, check=False)
    assert bad.returncode == 2 and "column 'body' not found; available: id, text" in bad.stderr
