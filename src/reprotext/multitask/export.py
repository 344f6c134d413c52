"""The multitask MLflow pyfunc model: rows of (``text``, ``task``) in, each row's label under its task's head out.

One model for every task (the encoder is shared, so one copy of its weights): the ``task`` column picks the
head. The output has ``task``, ``label`` and one ``prob_<task>.<label>`` column per task and label, NaN outside
the row's own task. Saved as an MLflow "model from code", like the single-task export (export.py).
"""
from __future__ import annotations

import json
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from reprotext.export import NORMALIZE_DEFAULT, _mlflow_pyfunc, _normalize_file, pyfunc_kwargs, texts_from_input

MODEL_CODE = Path(__file__).resolve().parent / "pyfunc_model.py"


def prob_column(task: str, label: str) -> str:
    return f"prob_{task}.{label}"


def tasks_from_input(model_input: Any, n: int, known: Sequence[str]) -> list[str]:
    """The ``task`` column as a list of known task names, with MLflow's error for a missing or unknown one."""
    from mlflow.exceptions import MlflowException
    from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE

    if not isinstance(model_input, pd.DataFrame) or "task" not in model_input.columns:
        raise MlflowException(f"input needs a 'task' column naming each row's task (one of {', '.join(known)}) "
                              "beside its 'text'", error_code=INVALID_PARAMETER_VALUE)
    tasks = model_input["task"].tolist()
    assert len(tasks) == n
    unknown = sorted({str(t) for t in tasks if t not in known})
    if unknown:
        raise MlflowException(f"task {unknown[0]!r} is not one of this model's tasks ({', '.join(known)})",
                              error_code=INVALID_PARAMETER_VALUE)
    return tasks


def prediction_frame(tasks: Sequence[str], probas: Mapping[str, np.ndarray], rows: Mapping[str, np.ndarray],
                     task_labels: Mapping[str, Sequence[str]]) -> pd.DataFrame:
    """``task``, ``label`` and every ``prob_<task>.<label>`` column (NaN outside the row's task).

    ``probas[t]`` holds the probabilities (n_t, C_t) of the rows ``rows[t]`` whose task is t.
    """
    n = len(tasks)
    columns = {prob_column(t, label): np.full(n, np.nan) for t, labels in task_labels.items() for label in labels}
    predicted = np.empty(n, dtype=object)
    for t, proba in probas.items():
        idx = rows[t]
        labels = list(task_labels[t])
        for j, label in enumerate(labels):
            columns[prob_column(t, label)][idx] = proba[:, j]
        predicted[idx] = [labels[i] for i in proba.argmax(1)] if len(proba) else []
    frame = pd.DataFrame(columns)
    frame.insert(0, "label", predicted.astype(str) if n else [])
    frame.insert(0, "task", list(tasks))
    return frame


class MultitaskPyfunc(_mlflow_pyfunc().PythonModel):
    """pyfunc wrapper around a saved multitask model and its tokenizer."""

    def load_context(self, context) -> None:
        from reprotext.multitask.model import load_multitask
        from reprotext.tokenizer import Tokenizer

        self.tokenizer = Tokenizer(context.artifacts["tokenizer"])
        spec = context.artifacts.get("normalize")
        self.normalize = json.loads(Path(spec).read_text(encoding="utf-8")) if spec else dict(NORMALIZE_DEFAULT)
        self.model, _ = load_multitask(context.artifacts["model"], self.tokenizer.sha256)

    def predict(self, context, model_input: pd.DataFrame, params: dict[str, Any] | None = None) -> pd.DataFrame:
        from reprotext.data.normalize import normalize_texts
        from reprotext.evaluation import predict_proba

        texts = normalize_texts(pd.Series(texts_from_input(model_input), dtype="str"), self.normalize["form"],
                                self.normalize["lowercase"]).tolist()
        tasks = tasks_from_input(model_input, len(texts), self.model.tasks)
        batch_size = int((params or {}).get("batch_size", 128))
        rows = {t: np.flatnonzero(np.asarray(tasks, dtype=object) == t) for t in dict.fromkeys(tasks)}
        probas = {t: predict_proba(self.model.task_model(t), self.tokenizer, [texts[i] for i in idx], batch_size)
                  for t, idx in rows.items()}
        return prediction_frame(tasks, probas, rows, self.model.task_labels)


def _model_kwargs(model_dir: Path, tokenizer_model: Path, task_labels: Mapping[str, Sequence[str]],
                  example: pd.DataFrame, normalize_file: Path) -> dict:
    outputs = [("string", "task"), ("string", "label"),
               *(("double", prob_column(t, label)) for t, labels in task_labels.items() for label in labels)]
    return pyfunc_kwargs(MODEL_CODE, model_dir, tokenizer_model, normalize_file, ["text", "task"], outputs, example)


def save(model_dir: Path, tokenizer_model: Path, task_labels: Mapping[str, Sequence[str]], example: pd.DataFrame,
         out: Path, normalize: dict | None = None) -> None:
    """Save the multitask pyfunc model into ``out``; ``example`` has ``text`` and ``task`` columns."""
    with tempfile.TemporaryDirectory(prefix="reprotext-export-") as tmp:
        _mlflow_pyfunc().save_model(path=str(out), **_model_kwargs(model_dir, tokenizer_model, task_labels, example,
                                                                   _normalize_file(tmp, normalize)))


def log(model_dir: Path, tokenizer_model: Path, task_labels: Mapping[str, Sequence[str]], example: pd.DataFrame,
        name: str, registered_name: str, normalize: dict | None = None) -> str:
    """Log the model to the active MLflow run and register a version of ``registered_name``; returns the version."""
    with tempfile.TemporaryDirectory(prefix="reprotext-export-") as tmp:
        info = _mlflow_pyfunc().log_model(name=name, registered_model_name=registered_name,
                                          **_model_kwargs(model_dir, tokenizer_model, task_labels, example,
                                                          _normalize_file(tmp, normalize)))
    return str(info.registered_model_version)
