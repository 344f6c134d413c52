"""evaluate: the only stage that opens the test splits; metrics, confusion, calibration and baselines for both
models, zero-shot on the target test split, the report, and the exported MLflow models."""
from pathlib import Path

import pandas as pd

from reprotext import embeddings, export, retrieval, stage, zeroshot
from reprotext.config import EvaluateConfig, PrepareConfig, load_section
from reprotext.data.store import read_frame
from reprotext.errors import ArtifactError, DataError
from reprotext.evaluation import (classification_metrics, confusion_frame, full_metrics, majority_baseline,
                                  per_class_frame, predict_tokens, predictions_frame, reliability_table,
                                  save_confusion, save_reliability, tfidf_logreg)
from reprotext.io import atomic_dir, atomic_file, read_json, write_json
from reprotext.models import load_model
from reprotext.multitask import export as multitask_export
from reprotext.multitask.scoring import score_test as score_multitask
from reprotext.report import write_report
from reprotext.retrieval import dual_encoder
from reprotext.tokenizer import TokenArray, Tokenizer
from reprotext.tracking import best_effort, stage_run

# The registry names; `models:/reprotext@champion` is the best source-task classifier so far.
REGISTERED = {"source": "reprotext", "target": "reprotext-target"}
MULTITASK_REGISTERED = "reprotext-multitask"  # one model, every task: the input's `task` column picks the head


def _read_split(path: Path, hint: str) -> pd.DataFrame:
    if not path.is_file():
        raise DataError(f"{path}: split not found; {hint}")
    frame = read_frame(path, columns=["text", "label"])
    frame["label"] = frame["label"].astype(str)
    return frame


def main() -> None:
    p = stage.parser(__doc__)
    p.add_argument("--splits", required=True)
    p.add_argument("--tokenizer", required=True)
    p.add_argument("--source-model", required=True)
    p.add_argument("--target-model", required=True)
    p.add_argument("--embeddings", required=True, help="word2vec vectors for zero-shot")
    p.add_argument("--finetune-report", required=True, help="the finetune stage's report directory")
    p.add_argument("--finetune-metrics", required=True)
    p.add_argument("--reports", required=True)
    p.add_argument("--report", required=True, help="the markdown report to write")
    p.add_argument("--export", required=True, help="directory for the exported MLflow models")
    p.add_argument("--multitask", help="the multitask stage's models; its tasks' test splits are scored too")
    p.add_argument("--multitask-data", help="the multitask stage's extra tasks' splits")
    p.add_argument("--multitask-metrics", help="the multitask stage's metrics (dev scores, few-shot)")
    p.add_argument("--metrics", required=True)
    args = p.parse_args()
    cfg = load_section("evaluate", EvaluateConfig, args.params)
    prep = load_section("prepare", PrepareConfig, args.params)
    normalize = {"form": prep.unicode_form, "lowercase": prep.lowercase}  # what the exported models apply to input
    with stage_run("evaluate", cfg.model_dump()) as mlflow:
        tok = Tokenizer.load(args.tokenizer)
        finetune = read_json(args.finetune_metrics)
        fewshot_csv = Path(args.finetune_report) / "fewshot_summary.csv"
        if not fewshot_csv.is_file():
            raise ArtifactError(f"{fewshot_csv}: few-shot summary missing; run `dvc repro finetune`")
        fewshot = pd.read_csv(fewshot_csv, dtype={"k": str})
        metrics, examples, per_class = {}, {}, {}
        reports = Path(args.reports)
        with atomic_dir(args.reports) as tmp:
            for role, model_dir, name in (("source", args.source_model, "train"), ("target", args.target_model, "finetune")):
                test = _read_split(Path(args.splits) / role / "test.parquet", "run `dvc repro split` first")
                train = _read_split(Path(args.splits) / role / "train.parquet", "run `dvc repro split` first")
                model, _ = load_model(model_dir, tok.sha256)
                labels = list(model.config.labels)
                tokens = TokenArray.from_lists(tok.encode(test["text"].tolist(), threads=2))
                proba = predict_tokens(model, tokens, cfg.batch_size)
                predicted = [labels[i] for i in proba.argmax(1)]
                actual = test["label"].tolist()
                examples[role] = [t[:300] for t in test["text"].head(2)]
                test_metrics = full_metrics(actual, predicted, labels, proba, cfg.calibration_bins)
                baselines = {
                    "majority": full_metrics(actual, majority_baseline(train["label"].tolist(), len(test)), labels)}
                lr_pred, lr_proba, lr_classes = tfidf_logreg(train["text"].tolist(), train["label"].tolist(),
                                                             test["text"].tolist(), cfg.tfidf_max_features,
                                                             cfg.tfidf_c, cfg.seed)
                baselines["tfidf_logreg"] = full_metrics(actual, lr_pred, lr_classes, lr_proba, cfg.calibration_bins)
                metrics[role] = {"model": name, "test": test_metrics, "test_docs": len(test), "baselines": baselines}
                if role == "target":
                    metrics[role]["zeroshot"] = _zero_shot(Path(model_dir), args, tok, tokens, actual, train, model)
                per_class[role] = per_class_frame(actual, predicted, labels)
                per_class[role].to_csv(tmp / f"{role}_per_class.csv", index=False, float_format="%.6g")
                confusion_frame(actual, predicted, labels).to_csv(tmp / f"{role}_confusion.csv")
                predictions_frame(actual, predicted).to_csv(tmp / f"{role}_predictions.csv", index=False)
                save_confusion(actual, predicted, labels, tmp / f"{role}_confusion.png",
                               f"{role} task, {name} model: test accuracy {test_metrics['accuracy']:.3f}")
                index = {label: i for i, label in enumerate(labels)}
                table = reliability_table(proba, [index.get(a, -1) for a in actual], cfg.calibration_bins)
                table[table["count"] > 0].to_csv(tmp / f"{role}_reliability.csv", index=False, float_format="%.6g")
                save_reliability(table, test_metrics["ece"], tmp / f"{role}_reliability.png",
                                 f"{role} task, {name} model (test)")
                rows = {name: test_metrics, **baselines, **{f"zeroshot_{k}": v for k, v in
                                                            metrics[role].get("zeroshot", {}).items() if k != "majority"}}
                pd.DataFrame([{"method": k, **v} for k, v in rows.items()]).to_csv(
                    tmp / f"{role}_comparison.csv", index=False, float_format="%.6g")
                if cfg.retrieval:
                    metrics[role]["retrieval"] = _retrieval(role, args, cfg, tok, tokens, test, train, tmp)
        figures = {f"{role}_{kind}": reports / f"{role}_{kind}.png" for role in ("source", "target")
                   for kind in ("confusion", "reliability")}
        figures.update({"fewshot": Path(args.finetune_report) / "fewshot.png",
                        "transfer": Path(args.finetune_report) / "transfer.png",
                        "finetune_history": Path(args.target_model) / "history.png"})
        figures.update({f"{role}_retrieval_pr": reports / f"{role}_retrieval_pr.png" for role in metrics
                        if "retrieval" in metrics[role]})
        # None when the stage is switched off (or not passed)
        multitask = score_multitask(args.multitask, args.multitask_data, args.multitask_metrics, args.splits, cfg, tok)
        if multitask is not None:
            multitask["dev"] = read_json(args.multitask_metrics)
            rows_csv = Path(args.finetune_report) / "fewshot.csv"  # per run: the seeds the multitask stage used
            if not rows_csv.is_file():
                raise ArtifactError(f"{rows_csv}: few-shot runs missing; run `dvc repro finetune`")
            multitask["finetune_rows"] = pd.read_csv(rows_csv, dtype={"k": str})
            figures["multitask_history"] = Path(args.multitask) / "history.png"
        with atomic_file(args.report) as tmp_report:
            write_report(tmp_report, metrics, finetune, fewshot, per_class, figures, multitask=multitask)
        models = {"source": Path(args.source_model), "target": Path(args.target_model)}
        with atomic_dir(args.export) as tmp:
            for role, model_dir in models.items():
                labels = load_model(model_dir, tok.sha256)[0].config.labels
                export.save(model_dir, tok.path, labels, examples[role], tmp / role, normalize)
            if multitask is not None:
                multitask_export.save(multitask["model_dir"], tok.path, multitask["task_labels"],
                                      multitask["example"], tmp / "multitask", normalize)
        write_json(args.metrics, metrics if multitask is None else {**metrics, "multitask": multitask["test"]})
        with best_effort(f"the metrics were written to {args.metrics}"):
            for role, m in metrics.items():
                mlflow.log_metrics({f"{role}/test/{k}": v for k, v in m["test"].items()})
                mlflow.log_metrics({f"{role}/baseline/{b}/test/{k}": v for b, bm in m["baselines"].items()
                                    for k, v in bm.items()})
                mlflow.log_metrics({f"{role}/zeroshot/{z}/test/{k}": v for z, zm in m.get("zeroshot", {}).items()
                                    for k, v in zm.items()})
                if "retrieval" in m:
                    mlflow.log_metrics(retrieval.flat_metrics(m["retrieval"], f"{role}/retrieval"))
            if multitask is not None:
                for name, m in multitask["test"]["tasks"].items():
                    mlflow.log_metrics({f"multitask/{name}/test/{k}": v for k, v in m["test"].items()})
                if "single_task" in multitask["test"]:
                    mlflow.log_metrics({f"multitask/single_task/target/test/{k}": v
                                        for k, v in multitask["test"]["single_task"]["test"].items()})
            mlflow.log_artifacts(args.reports, "evaluate")
            mlflow.log_artifact(args.report)
            for role, model_dir in models.items():
                labels = load_model(model_dir, tok.sha256)[0].config.labels
                version, champion = export.log_and_register(model_dir, tok.path, labels, examples[role], role,
                                                            REGISTERED[role], metrics[role]["test"]["macro_f1"],
                                                            normalize)
                print(f"registered {REGISTERED[role]} version {version}" + (" as champion" if champion else ""))
            if multitask is not None:
                version = multitask_export.log(multitask["model_dir"], tok.path, multitask["task_labels"],
                                               multitask["example"], "multitask", MULTITASK_REGISTERED, normalize)
                print(f"registered {MULTITASK_REGISTERED} version {version}")
        for role, m in metrics.items():
            print(f"{role:>6} ({m['model']}): test accuracy {m['test']['accuracy']:.4f}, macro-F1 {m['test']['macro_f1']:.4f}"
                  f" on {m['test_docs']} documents")


def _zero_shot(model_dir: Path, args, tok: Tokenizer, tokens: TokenArray, actual: list[str], train: pd.DataFrame,
               target_model) -> dict[str, dict[str, float]]:
    """Zero-shot on the target test split with the descriptions the finetune stage recorded, against the majority."""
    spec_path = model_dir / "zeroshot.json"
    if not spec_path.is_file():
        raise ArtifactError(f"{spec_path}: zero-shot label descriptions missing; rerun `dvc repro finetune`")
    spec = read_json(spec_path)
    labels, label_texts = spec["labels"], spec["descriptions"]
    source, _ = load_model(args.source_model, tok.sha256)
    out = {"majority": classification_metrics(actual, majority_baseline(train["label"].tolist(), len(actual)))}
    for name, vectors in (("word2vec", embeddings.load(args.embeddings, tok.sha256)),
                          ("source_encoder", source.encoder.embedding.weight.detach().numpy())):
        sims = zeroshot.classify(vectors, tok, tokens, labels, label_texts, spec["center"], target_model.config.max_len)
        out[name] = classification_metrics(actual, [labels[i] for i in sims.argmax(1)])
    return out


def _retrieval(role: str, args, cfg: EvaluateConfig, tok: Tokenizer, test_tokens: TokenArray, test: pd.DataFrame,
               train: pd.DataFrame, out_dir: Path) -> dict:
    """Query by example on one task: its test documents query its training split, with every representation
    (word2vec, the trained, fine-tuned and dual encoders) and the TF-IDF and BM25 baselines; the PR plot."""
    source, target = load_model(args.source_model, tok.sha256)[0], load_model(args.target_model, tok.sha256)[0]
    w2v = embeddings.load(args.embeddings, tok.sha256)
    vectorizers = {
        "word2vec": lambda d: retrieval.mean_pool(w2v, d, source.config.max_len),
        "trained_encoder": lambda d: retrieval.encode(source.encoder, d, source.config.max_len, cfg.batch_size),
        "finetuned_encoder": lambda d: retrieval.encode(target.encoder, d, target.config.max_len, cfg.batch_size)}
    dual_dir = Path(args.target_model) / "dual_encoder"
    if dual_dir.is_dir():
        dual, dual_config = dual_encoder.load_encoder(dual_dir, tok.sha256)
        vectorizers["dual_encoder"] = lambda d: retrieval.encode(dual, d, dual_config.max_len, cfg.batch_size)
    out, curves = retrieval.evaluate_collection(
        vectorizers, tok.encode_array(train["text"].tolist(), threads=2), test_tokens, train["text"].tolist(),
        test["text"].tolist(), train["label"].tolist(), test["label"].tolist(), cfg.retrieval_center,
        cfg.retrieval_bm25_k1, cfg.retrieval_bm25_b, cfg.tfidf_max_features)
    pd.concat([c.assign(method=m) for m, c in curves.items()]).to_csv(out_dir / f"{role}_retrieval_pr.csv",
                                                                      index=False, float_format="%.6g")
    retrieval.save_pr_plot(curves, out_dir / f"{role}_retrieval_pr.png",
                           f"{role} task: each test document queries the {len(train)} training documents")
    return out


if __name__ == "__main__":
    stage.run(main)
