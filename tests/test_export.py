"""The pyfunc model: save, load, predict, bad input, the champion alias."""
from __future__ import annotations

import os
import subprocess
import sys

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from reprotext import export
from reprotext.errors import ReprotextError
from reprotext.evaluation import predict_proba
from reprotext.models import Classifier, ModelConfig, save_model

LABELS = ("cars", "space", "sport")


@pytest.fixture(scope="module")
def saved(tokenizer, tmp_path_factory):
    root = tmp_path_factory.mktemp("export")
    model = Classifier(ModelConfig("bag", tokenizer.vocab_size, 8, LABELS, tokenizer_sha256=tokenizer.sha256)).eval()
    save_model(model, root / "model", {})
    export.save(root / "model", tokenizer.path, LABELS, ["rocket orbit", "goal"], root / "pyfunc")
    return model, root


def test_pyfunc_matches_the_raw_model(saved, tokenizer):
    model, root = saved
    pyfunc = mlflow.pyfunc.load_model(str(root / "pyfunc"))
    texts = ["rocket launch orbit", "the  engine\tbrake", ""]
    out = pyfunc.predict(pd.DataFrame({"text": texts}))
    assert list(out.columns) == ["label"] + [f"prob_{name}" for name in LABELS]
    expected = predict_proba(model, tokenizer, ["rocket launch orbit", "the engine brake", ""])
    np.testing.assert_allclose(out[[f"prob_{n}" for n in LABELS]].to_numpy(), expected, rtol=1e-5)
    assert out["label"].tolist() == [LABELS[i] for i in expected.argmax(1)]
    # The wrapped model takes a plain list of strings too; the signature is recorded.
    assert pyfunc.unwrap_python_model().predict(None, ["rocket"]).shape == (1, 4)
    assert pyfunc.metadata.get_input_schema().input_names() == ["text"]


def test_pyfunc_normalises_input_as_prepare_did(saved, tokenizer, tmp_path):
    model, root = saved
    export.save(root / "model", tokenizer.path, LABELS, ["rocket"], tmp_path / "lower",
                {"form": "NFKC", "lowercase": True})
    pyfunc = mlflow.pyfunc.load_model(str(tmp_path / "lower"))
    out = pyfunc.predict(pd.DataFrame({"text": ["ＲＯＣＫＥＴ  Launch", "Goal"]}))  # full-width letters fold
    expected = predict_proba(model, tokenizer, ["rocket launch", "goal"])
    np.testing.assert_allclose(out[[f"prob_{n}" for n in LABELS]].to_numpy(), expected, rtol=1e-5)
    # The default export keeps case, as prepare does by default.
    kept = mlflow.pyfunc.load_model(str(root / "pyfunc")).predict(pd.DataFrame({"text": ["ROCKET launch"]}))
    np.testing.assert_allclose(kept[[f"prob_{n}" for n in LABELS]].to_numpy(),
                               predict_proba(model, tokenizer, ["ROCKET launch"]), rtol=1e-5)


@pytest.mark.parametrize("bad,match", [
    (pd.DataFrame({"body": ["x"]}), "text"),
    ([1, 2], "not a string"),
])
def test_bad_input_is_a_clear_mlflow_error(bad, match):
    with pytest.raises(MlflowException, match=match):
        export.texts_from_input(bad)


def test_the_champion_alias_moves_only_on_improvement(saved, tokenizer, tmp_path, monkeypatch):
    _, root = saved
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path}/mlflow.db")
    client = MlflowClient()
    history = []
    for score in (0.5, 0.4, 0.6):
        with mlflow.start_run():
            history.append(export.log_and_register(root / "model", tokenizer.path, LABELS, ["x"], "m", "toy", score))
    assert history == [("1", True), ("2", False), ("3", True)]
    assert str(client.get_model_version_by_alias("toy", "champion").version) == "3"
    loaded = mlflow.pyfunc.load_model("models:/toy@champion")
    assert loaded.predict(pd.DataFrame({"text": ["goal match"]})).shape == (1, 4)


def test_loading_a_missing_model_names_it(tmp_path):
    with pytest.raises(ReprotextError, match="cannot load model"):
        export.load(str(tmp_path / "nothing"))


def test_predict_from_the_cli_warns_of_nothing(saved, tmp_path):
    """`reprotext predict` in a fresh process, every warning shown: no "Add type hints" from MLflow, no bar in a log."""
    _, root = saved
    src, out = tmp_path / "in.csv", tmp_path / "out.csv"
    pd.DataFrame({"text": ["rocket orbit", "goal"]}).to_csv(src, index=False)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}  # this checkout's reprotext
    proc = subprocess.run([sys.executable, "-W", "always", "-m", "reprotext.cli", "predict", "--model",
                           str(root / "pyfunc"), "--input", str(src), "--output", str(out)],
                          capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert pd.read_csv(out)["label"].isin(LABELS).all()
    assert "type hint" not in proc.stderr, proc.stderr[-2000:]
    assert "doc/s" not in proc.stderr, proc.stderr[-2000:]  # no progress bar on a pipe (a log, CI)
