"""multitask: one encoder with a head per task (source, target and any extra tasks), trained together on
interleaved one-task batches (Collobert & Weston 2008); against the single-task model on the target task, with
all of its training data and with few labels. Dev splits only: the evaluate stage scores the test splits."""
import io
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from reprotext import embeddings, stage
from reprotext.config import MultitaskConfig, PrepareConfig, SplitConfig, load_section
from reprotext.io import atomic_dir, atomic_file, write_json
from reprotext.models import load_model
from reprotext.multitask import (DISABLED, MultitaskClassifier, MultitaskSettings, copy_encoder_statistics,
                                 fit_multitask, save_multitask, task_probabilities)
from reprotext.multitask.data import prepare_extra
from reprotext.multitask.training import monitor_key
from reprotext.parallel import run_jobs
from reprotext.tokenizer import Tokenizer
from reprotext.tracking import best_effort, stage_run
from reprotext.training import seed_everything
from reprotext.training.data import load_task
from reprotext.training.history import save_history
from reprotext.transfer import halve, sample_per_class, score, subset, summarise_curve

def main() -> None:
    p = stage.parser(__doc__)
    p.add_argument("--splits", required=True, help="the split stage's directory (source/, target/)")
    p.add_argument("--tokenizer", required=True)
    p.add_argument("--tokens", required=True, help="the tokenize stage's directory (source/, target/)")
    p.add_argument("--trained", required=True, help="the train stage's model: the encoder's architecture and "
                                                    "statistics (the weights start where train's started)")
    p.add_argument("--embeddings", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--data-out", required=True, help="where the extra tasks' splits are written")
    p.add_argument("--history", required=True)
    p.add_argument("--report", required=True, help="directory for the few-shot rows")
    p.add_argument("--metrics", required=True)
    args = p.parse_args()
    cfg = load_section("multitask", MultitaskConfig, args.params)
    prep = load_section("prepare", PrepareConfig, args.params)
    split_cfg = load_section("split", SplitConfig, args.params)
    with stage_run("multitask", cfg.model_dump(mode="json")) as mlflow:
        if not cfg.enabled:
            with atomic_dir(args.out) as out, atomic_dir(args.data_out) as data, atomic_dir(args.report) as report:
                for d in (out, data, report):
                    write_json(d / DISABLED, {"enabled": False})
            with atomic_file(args.history) as tmp:
                pd.DataFrame(columns=["epoch", "train/loss", "dev/loss"]).to_csv(tmp, index=False)
            write_json(args.metrics, {"enabled": False})
            print("multitask.enabled is false: nothing trained")
            return
        tok = Tokenizer.load(args.tokenizer)
        trained, meta = load_model(args.trained, tok.sha256)
        max_len = trained.config.max_len
        splits, tokens = Path(args.splits), Path(args.tokens)
        train_sets, dev_sets, labels = {}, {}, {}
        for role in ("source", "target"):
            train_sets[role], dev_sets[role], labels[role] = load_task(splits / role, tokens / role, tok.sha256,
                                                                      max_len)
        extras = [prepare_extra(task, prep, split_cfg) for task in cfg.extra_tasks]
        for extra in extras:
            train_sets[extra.name], dev_sets[extra.name] = extra.datasets(tok, max_len)
            labels[extra.name] = extra.labels
        # The target's dev split is halved as finetune halves it: one half stops, the other scores. The other
        # tasks' dev splits are scored whole at the end; every epoch scores a sample of at most epoch_dev_docs.
        stop_idx, score_idx = halve(dev_sets["target"].labels, cfg.seed)
        dev_score = subset(dev_sets["target"], score_idx)
        dev_full = dict(dev_sets)
        dev_sets["target"] = subset(dev_sets["target"], stop_idx)
        for n in dev_sets:
            if n != "target" and cfg.epoch_dev_docs and len(dev_sets[n]) > cfg.epoch_dev_docs:
                sample = np.random.default_rng(cfg.seed).permutation(len(dev_sets[n]))[: cfg.epoch_dev_docs]
                dev_sets[n] = subset(dev_sets[n], np.sort(sample))
        # The weights start where the train stage's started (word2vec or random embeddings), as finetune's
        # from-scratch runs do; the encoder's statistics (a bag's IDF, word starts) are the trained model's.
        w2v = embeddings.load(args.embeddings, tok.sha256)
        vectors = w2v if meta.get("train_config", {}).get("embeddings", "pretrained") == "pretrained" else None
        base_config = replace(trained.config, dropout=cfg.dropout)

        def build(names: list[str]) -> MultitaskClassifier:
            model = MultitaskClassifier(base_config, {n: labels[n] for n in names}, vectors)
            copy_encoder_statistics(model, trained)
            return model

        def settings(sizes: list[int], seed: int, stop_on: str, steps: int | None, bar: bool) -> MultitaskSettings:
            probs = task_probabilities(sizes, cfg.sampling, cfg.temperature)
            return MultitaskSettings(lr=cfg.lr, batch_size=cfg.batch_size, max_epochs=cfg.max_epochs,
                                     patience=cfg.patience, seed=seed, probabilities=tuple(probs),
                                     steps_per_epoch=steps, weight_decay=cfg.weight_decay, optimizer=cfg.optimizer,
                                     monitor=cfg.monitor, stop_on=stop_on, accelerator=cfg.accelerator,
                                     precision=cfg.precision, threads=cfg.threads, progress_bar=bar,
                                     weight_stats=bar)  # the multitask fit's history is kept; the others' are not

        def run(names: list[str], train: dict, seed: int, steps: int | None, stop_on: str, mlflow_module=None,
                bar=False):
            seed_everything(seed)  # the heads' initial weights repeat for a seed, whatever ran before
            model = build(names)
            stop_on = stop_on if stop_on == "mean" or stop_on in names else "mean"
            result = fit_multitask(model, [train[n] for n in names], [dev_sets[n] for n in names],
                                   settings([len(train[n]) for n in names], seed, stop_on, steps, bar), mlflow_module)
            return model, result

        def target_scores(model: MultitaskClassifier) -> dict[str, float]:
            return score(model.task_model("target"), dev_score, labels["target"])

        names = list(train_sets)
        probs = task_probabilities([len(train_sets[n]) for n in names], cfg.sampling, cfg.temperature)
        # The comparison runs (single-task; few-shot, multitask and single-task) are each a pure function of
        # their seed: they run over multitask.workers processes while this one fits the multitask model.
        few_steps = cfg.fewshot_steps_per_epoch or cfg.steps_per_epoch
        variants = {"multitask": names, **({"single_task": ["target"]} if cfg.single_task else {})}
        # The single-task few-shot runs first: they take the most epochs, and the first job starts at once.
        jobs = [(k, seed, variant) for k in cfg.fewshot_k for seed in cfg.fewshot_seeds for variant in reversed(variants)]
        jobs += [("all", cfg.seed, "single_task")] if cfg.single_task else []

        def comparison(job: tuple) -> tuple:
            k, seed, variant = job
            if k == "all":
                single_model, single_fit = run(["target"], train_sets, seed, cfg.steps_per_epoch, "target")
                weights = io.BytesIO()  # bytes, not tensors: torch would pass tensors by file descriptors of this process
                torch.save(single_model.state_dict(), weights)
                return weights.getvalue(), single_fit, target_scores(single_model)
            idx = sample_per_class(train_sets["target"].labels, k, seed)  # finetune's draw for this seed
            train_k = {**train_sets, "target": subset(train_sets["target"], idx)}
            few_model, few_result = run(variants[variant], train_k, seed, few_steps, cfg.fewshot_stop_on)
            return {"k": str(k), "variant": variant, "seed": seed, "train_docs": len(idx),
                    "best_epoch": few_result.best_epoch, **target_scores(few_model)}

        (model, result), done = run_jobs(comparison, jobs, cfg.workers, in_parent=lambda: run(
            names, train_sets, cfg.seed, cfg.steps_per_epoch, cfg.stop_on, mlflow, bar=True))
        tasks = {}
        for n in names:
            scored = dev_score if n == "target" else dev_full[n]
            tasks[n] = {"train_docs": len(train_sets[n]), "dev_docs": len(scored), "classes": len(labels[n]),
                        "sampling_probability": float(probs[names.index(n)]),
                        "dev": score(model.task_model(n), scored, labels[n])}
        metrics = {"enabled": True, "tasks": tasks, "best_epoch": result.best_epoch, "epochs_run": len(result.history),
                   "steps": result.steps, "stopped_early": result.stopped_early,
                   "early_stopping": monitor_key(cfg.monitor, cfg.stop_on),
                   "fewshot_early_stopping": monitor_key(cfg.monitor, cfg.fewshot_stop_on), "sampling": cfg.sampling,
                   "temperature": cfg.temperature, "fewshot_seeds": list(cfg.fewshot_seeds),
                   "dev": {"loss": result.best["dev/loss"], "accuracy": result.best["dev/accuracy"]},
                   "dev_score_docs": len(dev_score), "dev_stop_docs": len(dev_sets["target"])}
        rows = [{"k": "all", "variant": "multitask", "seed": cfg.seed, "train_docs": len(train_sets["target"]),
                 "best_epoch": result.best_epoch, **tasks["target"]["dev"]}]
        single = single_result = None
        if cfg.single_task:
            state, single_result, single_dev = done[-1]
            single = build(["target"])
            weights = io.BytesIO(state)
            single.load_state_dict(torch.load(weights, weights_only=True))
            metrics["single_task"] = {"best_epoch": single_result.best_epoch, "epochs_run": len(single_result.history),
                                      "dev": single_dev}
            rows.append({"k": "all", "variant": "single_task", "seed": cfg.seed,
                         "train_docs": len(train_sets["target"]), "best_epoch": single_result.best_epoch,
                         **single_dev})
        rows += sorted(done[: len(done) - (1 if cfg.single_task else 0)],
                       key=lambda r: (cfg.fewshot_k.index(int(r["k"])), cfg.fewshot_seeds.index(r["seed"]),
                                      list(variants).index(r["variant"])))
        curve = pd.DataFrame(rows)
        summary = summarise_curve(curve)
        metrics["fewshot"] = {}
        for r in summary[summary["k"] != "all"].itertuples():
            metrics["fewshot"].setdefault(f"k{r.k}", {})[r.variant] = {
                "accuracy_mean": r.accuracy_mean, "accuracy_std": r.accuracy_std, "macro_f1_mean": r.macro_f1_mean,
                "macro_f1_std": r.macro_f1_std, "seeds": int(r.seeds)}

        info = {"best_epoch": result.best_epoch, "multitask_config": cfg.model_dump(mode="json"),
                "trained_from": str(args.trained)}
        with atomic_dir(args.out) as out, atomic_dir(args.data_out) as data, atomic_dir(args.report) as report:
            save_multitask(model, out / "model", info)
            if single is not None:
                save_multitask(single, out / "single_task", {**info, "best_epoch": single_result.best_epoch})
            save_history(result.history, Path(args.history), out / "history.png", result.best_epoch,
                         f"multitask: {base_config.model} encoder, heads {', '.join(names)}")
            for extra in extras:
                extra.save(data, {"stage": "multitask", "task": extra.name, "params": split_cfg.model_dump()})
            write_json(data / "tasks.json", {"extra_tasks": [e.name for e in extras]})
            curve.to_csv(report / "fewshot.csv", index=False, float_format="%.6g")
            summary.to_csv(report / "fewshot_summary.csv", index=False, float_format="%.6g")
        write_json(args.metrics, metrics)
        with best_effort(f"the model was saved to {args.out}"):
            mlflow.log_metrics({"best_epoch": result.best_epoch, "fit_seconds": result.seconds,
                                **{f"best/dev/{n}/accuracy": t["dev"]["accuracy"] for n, t in tasks.items()},
                                **{f"sampling/{n}": t["sampling_probability"] for n, t in tasks.items()}})
            if single_result is not None:
                mlflow.log_metrics({"single_task/dev/accuracy": metrics["single_task"]["dev"]["accuracy"],
                                    "single_task/fit_seconds": single_result.seconds})
            mlflow.log_artifact(str(Path(args.out) / "history.png"))
            mlflow.log_artifact(args.history)
            mlflow.log_artifacts(args.report, "multitask")
        for n, t in tasks.items():
            print(f"{n:>12}: dev accuracy {t['dev']['accuracy']:.4f} "
                  f"(multitask, {t['sampling_probability']:.2f} of the batches)")
        if "single_task" in metrics:
            print(f"{'target':>12}: dev accuracy {metrics['single_task']['dev']['accuracy']:.4f} (single task)")


if __name__ == "__main__":
    stage.run(main)
