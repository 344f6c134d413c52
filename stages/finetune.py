"""finetune: the trained encoder under a new head on the target task, against the same model from scratch;
a few-shot learning curve and zero-shot classification, all scored on the target dev split (never test)."""
from dataclasses import replace
from pathlib import Path

import pandas as pd
import torch

from reprotext import embeddings, stage, zeroshot
from reprotext.parallel import run_jobs
from reprotext.config import FinetuneConfig, load_section
from reprotext.evaluation import classification_metrics, majority_baseline
from reprotext.io import atomic_dir, write_json
from reprotext.models import load_model, save_model
from reprotext.pretraining import WORD2VEC, read_meta
from reprotext.retrieval import dual_encoder
from reprotext.tokenizer import Tokenizer
from reprotext.tracking import best_effort, stage_run
from reprotext.training import FitSettings, seed_everything
from reprotext.training.data import load_task
from reprotext.training.history import save_history
from reprotext.transfer import (fit_transfer, from_language_model, from_scratch, halve, sample_per_class,
                                save_comparison_plot, save_curve_plot, score, subset, summarise_curve, swap_head)

PRETRAINED = "pretrained"
LM_PRETRAINED = "lm_pretrained"  # few-shot only: the pretrain stage's LM encoder, never trained on the source task


def main() -> None:
    p = stage.parser(__doc__)
    p.add_argument("--splits", required=True)
    p.add_argument("--tokenizer", required=True)
    p.add_argument("--tokens", required=True)
    p.add_argument("--pretrained", required=True)
    p.add_argument("--embeddings", required=True, help="the word2vec vectors (scratch init and zero-shot)")
    p.add_argument("--lm", help="the pretrain stage's output: when it holds a language model, the few-shot curve "
                                "gains its column lm_pretrained (the LM's encoder, not source-trained)")
    p.add_argument("--out", required=True)
    p.add_argument("--history", required=True)
    p.add_argument("--report", required=True, help="directory for the comparison, few-shot and zero-shot files")
    p.add_argument("--metrics", required=True)
    args = p.parse_args()
    cfg = load_section("finetune", FinetuneConfig, args.params)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)  # also for the dual encoder's and zero-shot's tensor work
    with stage_run("finetune", cfg.model_dump()) as mlflow:
        tok = Tokenizer.load(args.tokenizer)
        pretrained, meta = load_model(args.pretrained, tok.sha256)
        train_ds, dev_ds, labels = load_task(Path(args.splits), Path(args.tokens), tok.sha256, pretrained.config.max_len)
        w2v = embeddings.load(args.embeddings, tok.sha256)
        # "From scratch" starts where the train stage started on the source task, so the gain is what the
        # source-task training added; "random" also takes away the word2vec pretraining.
        train_init = meta.get("train_config", {}).get("embeddings", "pretrained")
        inits = {"train_init": w2v if train_init == "pretrained" else None, "random": None}
        builders = {PRETRAINED: lambda: swap_head(pretrained, labels, cfg.dropout)}
        for name in cfg.scratch:
            builders[f"scratch_{name}"] = lambda vectors=inits[name]: from_scratch(pretrained, labels, cfg.dropout,
                                                                                 vectors)
        fewshot_builders = dict(builders)
        if args.lm and read_meta(args.lm, tok.sha256)["objective"] != WORD2VEC:  # bag/cnn: word2vec = train_init
            fewshot_builders[LM_PRETRAINED] = lambda: from_language_model(pretrained, labels, cfg.dropout, w2v, args.lm,
                                                                          tok.sha256)
        # Early stopping selects on one stratified half of dev; the reported dev scores come from the other half.
        stop_idx, score_idx = halve(dev_ds.labels, cfg.seed)
        dev_stop, dev_score = subset(dev_ds, stop_idx), subset(dev_ds, score_idx)
        schedule = dict(warmup_epochs=cfg.warmup_epochs, unfreeze_every=cfg.unfreeze_every,
                        encoder_lr_factor=cfg.encoder_lr_factor)
        full = FitSettings(cfg.lr, cfg.weight_decay, cfg.batch_size, cfg.max_epochs, cfg.patience, cfg.seed,
                           threads=cfg.threads)

        few = replace(full, batch_size=cfg.fewshot_batch_size, progress_bar=False, weight_stats=False,
                      lr=cfg.lr if cfg.fewshot_lr is None else cfg.fewshot_lr,
                      max_epochs=cfg.max_epochs if cfg.fewshot_max_epochs is None else cfg.fewshot_max_epochs,
                      patience=cfg.patience if cfg.fewshot_patience is None else cfg.fewshot_patience)

        def full_fit(variant: str, mlflow_module=None):
            seed_everything(cfg.seed)  # the new weights (head, random embeddings) repeat for a seed
            model = builders[variant]()
            result, frozen = fit_transfer(model, train_ds, dev_stop, full, **schedule, mlflow_module=mlflow_module)
            return model, result, frozen, score(model, dev_score, labels)

        def study_job(job: tuple[str, int, str]) -> dict:
            """One fit of the study: the scratch runs on all the data, or one few-shot draw; seeded by itself."""
            k, seed, variant = job
            if k == "all":
                _, result, frozen, scores = full_fit(variant)
                return {"result": result, "frozen": frozen, "scores": scores, "train_docs": len(train_ds)}
            idx = sample_per_class(train_ds.labels, int(k), seed)
            seed_everything(seed)
            model = fewshot_builders[variant]()
            result, _ = fit_transfer(model, subset(train_ds, idx), dev_stop, replace(few, seed=seed), **schedule)
            return {"result": result, "scores": score(model, dev_score, labels), "train_docs": len(idx)}

        # The fine-tuned model in this process (it logs to the stage's MLflow run); the study's fits, each a pure
        # function of its seed, over finetune.workers processes alongside it.
        jobs = [("all", cfg.seed, v) for v in builders if v != PRETRAINED]
        jobs += [(str(k), seed, v) for k in cfg.fewshot_k for seed in cfg.fewshot_seeds for v in fewshot_builders]
        (final, final_result, frozen, scores), done = run_jobs(
            study_job, jobs, cfg.workers, in_parent=lambda: full_fit(PRETRAINED, mlflow))
        full_runs = {PRETRAINED: {"result": final_result, "frozen": frozen, "scores": scores,
                                  "train_docs": len(train_ds)}}
        full_runs.update({v: r for (k, _, v), r in zip(jobs, done) if k == "all"})
        runs, histories, rows = {}, {}, []
        for variant in builders:
            r = full_runs[variant]
            result, scores = r["result"], r["scores"]
            runs[variant] = {"best_epoch": result.best_epoch, "epochs_to_best": result.best_epoch + 1,
                             "stopped_early": result.stopped_early,
                             "epochs_run": len(result.history), "frozen_groups_per_epoch": r["frozen"],
                             "dev": {"loss": result.best["dev/loss"], **scores}}
            histories[variant] = result.history
            rows.append({"k": "all", "variant": variant, "seed": cfg.seed, "train_docs": r["train_docs"],
                         "best_epoch": result.best_epoch, **scores})
            mlflow.log_metrics({f"{variant}/fit_seconds": result.seconds, f"{variant}/dev/accuracy": scores["accuracy"],
                                f"{variant}/dev/macro_f1": scores["macro_f1"]})
        for (k, seed, variant), r in zip(jobs, done):
            if k != "all":
                rows.append({"k": k, "variant": variant, "seed": seed, "train_docs": r["train_docs"],
                             "best_epoch": r["result"].best_epoch, **r["scores"]})
        curve = pd.DataFrame(rows)
        summary = summarise_curve(curve)

        # Zero-shot on the whole dev split: no training, nothing selected on it.
        label_texts = zeroshot.descriptions(labels, cfg.zeroshot_descriptions)
        dev_labels = [labels[i] for i in dev_ds.labels]
        train_labels = [labels[i] for i in train_ds.labels]
        zs = {"majority": classification_metrics(dev_labels, majority_baseline(train_labels, len(dev_labels)))}
        for name, vectors in (("word2vec", w2v), ("source_encoder", pretrained.encoder.embedding.weight.detach().numpy())):
            sims = zeroshot.classify(vectors, tok, dev_ds.tokens, labels, label_texts, cfg.zeroshot_center,
                                     pretrained.config.max_len)
            zs[name] = classification_metrics(dev_labels, [labels[i] for i in sims.argmax(1)])

        gain = {f"{v}.{key}": runs[PRETRAINED]["dev"][key] - runs[v]["dev"][key]
                for v in runs if v != PRETRAINED for key in ("accuracy", "macro_f1")}
        metrics = {"best_epoch": final_result.best_epoch, "epochs_run": len(final_result.history),
                   "stopped_early": final_result.stopped_early,
                   "dev": {"loss": final_result.best["dev/loss"], "accuracy": final_result.best["dev/accuracy"]},
                   "dev_score_docs": len(dev_score), "dev_stop_docs": len(dev_stop), "scratch_init": train_init,
                   "runs": runs, "transfer_gain": gain, "fewshot": {},
                   "zeroshot": {"dev": zs, "descriptions": dict(zip(labels, label_texts))}}
        for r in summary.itertuples():
            metrics["fewshot"].setdefault(f"k{r.k}", {})[r.variant] = {
                "accuracy_mean": r.accuracy_mean, "accuracy_std": r.accuracy_std, "macro_f1_mean": r.macro_f1_mean,
                "macro_f1_std": r.macro_f1_std, "seeds": int(r.seeds)}

        with atomic_dir(args.out) as tmp:
            if cfg.dual_encoder.enabled:  # retrieval: the same starting encoder, contrastive instead of a head
                metrics["dual_encoder"], seconds = dual_encoder.fit_for_retrieval(
                    pretrained, cfg.dual_encoder, train_ds.tokens, train_ds.labels, dev_stop.tokens, dev_stop.labels,
                    dev_score.tokens, dev_score.labels, final.encoder, tmp / "dual_encoder", tok)
                mlflow.log_metrics({**{f"dual_encoder/dev/{k}": v for k, v in metrics["dual_encoder"]["dev"].items()},
                                    "dual_encoder/fit_seconds": seconds})
            save_model(final, tmp, {"best_epoch": final_result.best_epoch, "finetune_config": cfg.model_dump(),
                                    "pretrained_from": str(args.pretrained)})
            write_json(tmp / "zeroshot.json", {"labels": labels, "descriptions": label_texts,
                                               "center": cfg.zeroshot_center})
            save_history(final_result.history, Path(args.history), tmp / "history.png", final_result.best_epoch,
                         f"finetune: {final.config.model} encoder, new head on the target task")
        with atomic_dir(args.report) as tmp:
            curve.to_csv(tmp / "fewshot.csv", index=False, float_format="%.6g")
            summary.to_csv(tmp / "fewshot_summary.csv", index=False, float_format="%.6g")
            wide = summary[summary["k"] != "all"].pivot(index="k", columns="variant", values="accuracy_mean")
            wide.index = wide.index.astype(int)
            wide.sort_index().reset_index().to_csv(tmp / "fewshot_curve.csv", index=False, float_format="%.6g")
            save_curve_plot(summary, tmp / "fewshot.png",
                            f"few-shot on the target task: mean +- std over {len(cfg.fewshot_seeds)} seeds")
            save_comparison_plot(histories, {v: r["best_epoch"] for v, r in runs.items()}, tmp / "transfer.png",
                                 "target dev (early-stopping half): fine-tuned vs from scratch")
            pd.DataFrame([{"method": m, **v} for m, v in zs.items()]).to_csv(tmp / "zeroshot_dev.csv", index=False,
                                                                             float_format="%.6g")
        write_json(args.metrics, metrics)
        with best_effort(f"the model was saved to {args.out}"):
            mlflow.log_metrics({"best_epoch": final_result.best_epoch, "best/dev/loss": final_result.best["dev/loss"],
                                "best/dev/accuracy": final_result.best["dev/accuracy"], "fit_seconds": final_result.seconds,
                                **{f"transfer_gain/{k}": v for k, v in gain.items()},
                                **{f"zeroshot/dev/{m}/accuracy": v["accuracy"] for m, v in zs.items()}})
            mlflow.log_artifact(str(Path(args.out) / "history.png"))
            mlflow.log_artifact(args.history)
            mlflow.log_artifacts(args.report, "finetune")
        for variant, r in runs.items():
            print(f"{variant:>22}: dev accuracy {r['dev']['accuracy']:.4f} (best epoch {r['best_epoch']})")


if __name__ == "__main__":
    stage.run(main)
