"""The MLflow pyfunc model: raw texts in, label and class probabilities out.

The model carries everything it needs: the classifier weights and config
(labels included), the sentencepiece model it was trained with, and the
reprotext code. It is saved as an MLflow "model from code" (no pickled Python
objects), registered in the model registry, and the alias ``champion`` moves to
a new version only when it beats the current champion on the gate metric.
"""
from __future__ import annotations

import json
import logging
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from reprotext.errors import ReprotextError

log = logging.getLogger(__name__)

CHAMPION = "champion"
GATE_TAG = "gate_metric"
_HERE = Path(__file__).resolve().parent
MODEL_CODE = _HERE / "pyfunc_model.py"
NORMALIZE_DEFAULT = {"form": "NFC", "lowercase": False}  # prepare's defaults


def _mlflow_pyfunc():
    import mlflow.pyfunc

    return mlflow.pyfunc


def texts_from_input(model_input: Any) -> list[str]:
    """A DataFrame with a ``text`` column, or a list/array/Series of strings, as a list of str."""
    from mlflow.exceptions import MlflowException
    from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE

    if isinstance(model_input, pd.DataFrame):
        if "text" not in model_input.columns:
            raise MlflowException(f"input needs a 'text' column; got columns {list(map(str, model_input.columns))}",
                                  error_code=INVALID_PARAMETER_VALUE)
        values = model_input["text"].tolist()
    elif isinstance(model_input, (list, tuple, pd.Series, np.ndarray)):
        values = list(np.asarray(model_input, dtype=object).ravel())
    elif isinstance(model_input, str):
        values = [model_input]
    else:
        raise MlflowException(f"input must be a DataFrame with a 'text' column or a list of strings, "
                              f"not {type(model_input).__name__}", error_code=INVALID_PARAMETER_VALUE)
    bad = [i for i, v in enumerate(values) if not isinstance(v, str)]
    if bad:
        raise MlflowException(f"row {bad[0]} is {type(values[bad[0]]).__name__}, not a string; every text must be a string",
                              error_code=INVALID_PARAMETER_VALUE)
    return values


class ReprotextPyfunc(_mlflow_pyfunc().PythonModel):
    """pyfunc wrapper around a saved classifier and its tokenizer."""

    def load_context(self, context) -> None:
        from reprotext.models import load_model
        from reprotext.tokenizer import Tokenizer

        self.tokenizer = Tokenizer(context.artifacts["tokenizer"])
        # How prepare normalised the training text; inputs get the same (older exports: the defaults).
        spec = context.artifacts.get("normalize")
        self.normalize = json.loads(Path(spec).read_text(encoding="utf-8")) if spec else dict(NORMALIZE_DEFAULT)
        self.model, _ = load_model(context.artifacts["model"], self.tokenizer.sha256)
        self.labels = list(self.model.config.labels)

    # The input hint is a DataFrame: MLflow then validates input by the logged signature (a `text` column), and
    # with no hint it warns on every load. A list[str] hint would replace that signature and its request format.
    def predict(self, context, model_input: pd.DataFrame, params: dict[str, Any] | None = None) -> pd.DataFrame:
        from reprotext.data.normalize import normalize_texts
        from reprotext.evaluation import predict_proba

        # One vectorised pass over the batch (a per-text call costs more than the forward).
        texts = normalize_texts(pd.Series(texts_from_input(model_input), dtype="str"), self.normalize["form"],
                                self.normalize["lowercase"]).tolist()
        batch_size = int((params or {}).get("batch_size", 128))
        return prediction_frame(predict_proba(self.model, self.tokenizer, texts, batch_size), self.labels)


def prediction_frame(proba: np.ndarray, labels: Sequence[str]) -> pd.DataFrame:
    """``label`` (the argmax) and one ``prob_<label>`` column per class."""
    frame = pd.DataFrame(proba.astype(np.float64), columns=[f"prob_{name}" for name in labels])
    frame.insert(0, "label", [labels[i] for i in proba.argmax(1)] if len(proba) else [])
    return frame


def pyfunc_kwargs(model_code: Path, model_dir: Path, tokenizer_model: Path, normalize_file: Path,
                  inputs: Sequence[str], outputs: Sequence[tuple[str, str]], example: pd.DataFrame) -> dict:
    """The keyword arguments of ``mlflow.pyfunc.save_model`` / ``log_model`` for a model from code.

    Args:
        model_code: the file defining the pyfunc model.
        model_dir, tokenizer_model, normalize_file: the artefacts it loads (``model``, ``tokenizer``, ``normalize``).
        inputs: the input columns (strings).
        outputs: the output columns as (MLflow type, name).
        example: an input example with the ``inputs`` columns.
    """
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, ParamSchema, ParamSpec, Schema

    import reprotext

    signature = ModelSignature(
        inputs=Schema([ColSpec("string", name) for name in inputs]),
        outputs=Schema([ColSpec(kind, name) for kind, name in outputs]),
        params=ParamSchema([ParamSpec("batch_size", "long", 128)]),
    )
    return dict(
        python_model=str(model_code),
        artifacts={"model": str(model_dir), "tokenizer": str(tokenizer_model), "normalize": str(normalize_file)},
        code_paths=[str(Path(reprotext.__file__).parent)],
        signature=signature,
        input_example=example,
        pip_requirements=_requirements(),
    )


def _model_kwargs(model_dir: Path, tokenizer_model: Path, labels: Sequence[str], example: list[str],
                  normalize_file: Path) -> dict:
    outputs = [("string", "label"), *(("double", f"prob_{name}") for name in labels)]
    return pyfunc_kwargs(MODEL_CODE, model_dir, tokenizer_model, normalize_file, ["text"], outputs,
                         pd.DataFrame({"text": example}))


def _requirements() -> list[str]:
    from importlib.metadata import version

    pins = [f"{name}=={version(name)}" for name in
            ("mlflow", "sentencepiece", "numpy", "pandas", "scikit-learn", "lightning", "pyyaml", "pydantic")]
    return [f"torch=={version('torch').split('+')[0]}", *pins]


def _normalize_file(tmp: str, normalize: dict | None) -> Path:
    """The text normalisation (prepare's ``unicode_form`` and ``lowercase``) as a JSON artefact."""
    spec = {**NORMALIZE_DEFAULT, **(normalize or {})}
    path = Path(tmp) / "normalize.json"
    path.write_text(json.dumps({"form": spec["form"], "lowercase": bool(spec["lowercase"])}), encoding="utf-8")
    return path


def save(model_dir: Path, tokenizer_model: Path, labels: Sequence[str], example: list[str], out: Path,
         normalize: dict | None = None) -> None:
    """Save the pyfunc model into ``out`` (an MLflow model directory).

    ``normalize`` ({"form": "NFC" | "NFKC", "lowercase": bool}) is how prepare normalised the training text.
    """
    with tempfile.TemporaryDirectory(prefix="reprotext-export-") as tmp:
        _mlflow_pyfunc().save_model(path=str(out), **_model_kwargs(model_dir, tokenizer_model, labels, example,
                                                                   _normalize_file(tmp, normalize)))


def log_and_register(model_dir: Path, tokenizer_model: Path, labels: Sequence[str], example: list[str],
                     name: str, registered_name: str, gate_value: float,
                     normalize: dict | None = None) -> tuple[str, bool]:
    """Log the model to the active run, register a version, and move ``champion`` if it is better.

    Returns (version, became_champion).
    """
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    with tempfile.TemporaryDirectory(prefix="reprotext-export-") as tmp:
        info = _mlflow_pyfunc().log_model(name=name, registered_model_name=registered_name,
                                          **_model_kwargs(model_dir, tokenizer_model, labels, example,
                                                          _normalize_file(tmp, normalize)))
    client = MlflowClient()
    version = str(info.registered_model_version)
    client.set_model_version_tag(registered_name, version, GATE_TAG, f"{gate_value:.6f}")
    try:
        current = client.get_model_version_by_alias(registered_name, CHAMPION)
        best = float(current.tags.get(GATE_TAG, "-inf"))
    except MlflowException:
        current, best = None, float("-inf")
    if gate_value > best:
        client.set_registered_model_alias(registered_name, CHAMPION, version)
        log.info("%s v%s is the new champion (%.4f > %s)", registered_name, version, gate_value,
                 "none" if current is None else f"{best:.4f}")
        return version, True
    return version, False


def load(uri: str):
    """An MLflow pyfunc model from a path or a models:/ URI, with a clear error when it is not one."""
    try:
        return _mlflow_pyfunc().load_model(uri)
    except Exception as exc:  # MLflow raises many types for a bad URI, a missing or broken model
        raise ReprotextError(f"cannot load model {uri!r} ({exc.__class__.__name__}: {str(exc).splitlines()[0][:200]}); "
                             "pass a directory like models/export/source or a URI like models:/reprotext@champion") from exc
