"""evaluate: the only stage that opens the test splits; metrics and confusion matrices for both models."""
from pathlib import Path

import pandas as pd

from reprotext import export, stage
from reprotext.config import EvaluateConfig, load_section
from reprotext.errors import DataError
from reprotext.evaluation import classification_metrics, predict_proba, predictions_frame, save_confusion
from reprotext.io import atomic_dir, write_json
from reprotext.models import load_model
from reprotext.tokenizer import Tokenizer
from reprotext.tracking import stage_run

# The registry names; `models:/reprotext@champion` is the best source-task classifier so far.
REGISTERED = {"source": "reprotext", "target": "reprotext-target"}


def main() -> None:
    p = stage.parser(__doc__)
    p.add_argument("--splits", required=True)
    p.add_argument("--tokenizer", required=True)
    p.add_argument("--source-model", required=True)
    p.add_argument("--target-model", required=True)
    p.add_argument("--reports", required=True)
    p.add_argument("--export", required=True, help="directory for the exported MLflow models")
    p.add_argument("--metrics", required=True)
    args = p.parse_args()
    cfg = load_section("evaluate", EvaluateConfig, args.params)
    with stage_run("evaluate", cfg.model_dump()) as mlflow:
        tok = Tokenizer.load(args.tokenizer)
        metrics, examples = {}, {}
        with atomic_dir(args.reports) as tmp:
            for role, model_dir, name in (("source", args.source_model, "train"), ("target", args.target_model, "finetune")):
                path = Path(args.splits) / role / "test.parquet"
                if not path.is_file():
                    raise DataError(f"{path}: test split not found; run `dvc repro split` first")
                test = pd.read_parquet(path)
                model, _ = load_model(model_dir, tok.sha256)
                proba = predict_proba(model, tok, test["text"].tolist(), cfg.batch_size)
                predicted = [model.config.labels[i] for i in proba.argmax(1)]
                actual = test["label"].astype(str).tolist()
                examples[role] = [t[:300] for t in test["text"].head(2)]
                metrics[role] = {"model": name, "test": classification_metrics(actual, predicted), "test_docs": len(test)}
                predictions_frame(actual, predicted).to_csv(tmp / f"{role}_predictions.csv", index=False)
                save_confusion(actual, predicted, model.config.labels, tmp / f"{role}_confusion.png",
                               f"{role} task, {name} model: test accuracy {metrics[role]['test']['accuracy']:.3f}")
        models = {"source": Path(args.source_model), "target": Path(args.target_model)}
        with atomic_dir(args.export) as tmp:
            for role, model_dir in models.items():
                labels = load_model(model_dir, tok.sha256)[0].config.labels
                export.save(model_dir, tok.path, labels, examples[role], tmp / role)
        write_json(args.metrics, metrics)
        for role, m in metrics.items():
            mlflow.log_metrics({f"{role}/test/{k}": v for k, v in m["test"].items()})
        mlflow.log_artifacts(args.reports, "evaluate")
        for role, model_dir in models.items():
            labels = load_model(model_dir, tok.sha256)[0].config.labels
            version, champion = export.log_and_register(model_dir, tok.path, labels, examples[role], role,
                                                        REGISTERED[role], metrics[role]["test"]["macro_f1"])
            print(f"registered {REGISTERED[role]} version {version}" + (" as champion" if champion else ""))
        for role, m in metrics.items():
            print(f"{role:>6} ({m['model']}): test accuracy {m['test']['accuracy']:.4f}, macro-F1 {m['test']['macro_f1']:.4f}"
                  f" on {m['test_docs']} documents")


if __name__ == "__main__":
    stage.run(main)
