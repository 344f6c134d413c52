"""Benchmark the train stage's encoders on the default data, and Lightning's per-step overhead.

Needs a repository where `dvc repro embed` has run (data/split, data/tokens,
models/tokenizer, models/embeddings under --root). For each encoder: the
params.yaml train config with that encoder, and the overrides in ENCODERS
(shorter documents and fewer epochs for the slow ones, reported); fitted as
the stage fits it (early stopping on dev loss), then scored on the *test*
split with the evaluate stage's functions. Nothing is tuned on test.

Overhead: the same model (default bag), the same pre-collated batches served
by the same DataLoader, and the same optimiser, once through Lightning's
Trainer with our ClassifierModule and once through a plain PyTorch loop doing
the same forward, loss, metric tally, backward, step and LR-schedule step;
per-step time over the epoch (setup excluded), median of --repeats alternated runs.

    .venv/bin/python bench/bench_train.py --root . [--encoders bag cnn] [--out bench/results/train.json]
"""
from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import statistics
import time
from dataclasses import replace
from pathlib import Path

import lightning as L
import pandas as pd
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset

from reprotext import embeddings
from reprotext.config import TrainConfig, load_section
from reprotext.evaluation import classification_metrics, predict_proba
from reprotext.models import Classifier, ModelConfig, encoder_statistics, load_statistics
from reprotext.tokenizer import Tokenizer
from reprotext.training import ClassifierModule, FitSettings, collate, fit, seed_everything
from reprotext.training.data import EpochShuffleSampler, id_batches, load_task
from reprotext.training.module import lr_factor
from reprotext.training.optim import make_optimizer

ROOT = Path(__file__).resolve().parents[1]
# Per encoder: params overrides. The sequence models read only the first 256 (128) pieces and get few
# epochs, so that the whole bench stays near 15 minutes on 2 idle CPU cores; the bag and the FFNN see
# what the stage defaults give them.
ENCODERS: dict[str, dict] = {
    "bag": {},
    # Picked on dev accuracy among the defaults (0.692), proj_dim 16 + dropout 0.5 (0.805), window 64 (0.734)
    # and this (0.825): position-specific weights over 256 x 64 inputs overfit at once without more dropout.
    "ffnn": {"max_epochs": 10, "dropout": 0.5, "lr": 1e-3},
    "cnn": {"max_len": 256, "max_epochs": 4},
    "rnn": {"max_len": 256, "max_epochs": 2},
    "transformer": {"max_len": 128, "max_epochs": 3, "schedule": "linear", "warmup": 0.05},
}


def train_config(params: Path, overrides: dict) -> TrainConfig:
    """params.yaml's train section with ``overrides`` merged (one level deep for the encoder sections)."""
    base = load_section("train", TrainConfig, params).model_dump()
    for key, value in overrides.items():
        base[key] = {**base[key], **value} if isinstance(value, dict) else value
    return TrainConfig.model_validate(base)


def run_encoder(name: str, cfg: TrainConfig, root: Path) -> dict:
    """Fit one encoder as the train stage does; dev and test scores, time."""
    tok = Tokenizer.load(root / "models/tokenizer")
    train, dev, labels = load_task(root / "data/split/source", root / "data/tokens/source", tok.sha256, cfg.max_len)
    vectors = embeddings.load(root / "models/embeddings", tok.sha256)
    seed_everything(cfg.seed)
    options, stats = encoder_statistics(cfg.model, cfg.encoder_options(), tok.pieces(), id_batches(train),
                                        train.labels, len(labels))
    config = ModelConfig(cfg.model, tok.vocab_size, vectors.shape[1], tuple(labels), cfg.hidden_dim, cfg.dropout,
                         cfg.max_len, tok.sha256, cfg.dropconnect, cfg.batch_norm, options)
    model = Classifier(config, vectors if cfg.embeddings == "pretrained" else None, cfg.freeze_embeddings)
    load_statistics(model, stats)
    result = fit(model, train, dev, replace(FitSettings.from_config(cfg), progress_bar=False))
    test = pd.read_parquet(root / "data/split/source/test.parquet")
    start = time.perf_counter()
    proba = predict_proba(model, tok, test["text"].tolist())
    predict_seconds = time.perf_counter() - start
    scores = classification_metrics(test["label"].astype(str).tolist(), [labels[i] for i in proba.argmax(1)])
    return {
        "overrides": ENCODERS[name], "max_len": cfg.max_len, "max_epochs": cfg.max_epochs,
        "parameters": sum(p.numel() for p in model.parameters()),
        "epochs_run": len(result.history), "best_epoch": result.best_epoch,
        "dev_accuracy": result.best["dev/accuracy"], "dev_loss": result.best["dev/loss"],
        "test_accuracy": scores["accuracy"], "test_macro_f1": scores["macro_f1"],
        "fit_seconds": result.seconds, "seconds_per_epoch": result.seconds / len(result.history),
        "test_predict_seconds": predict_seconds,
    }


class Batches(Dataset):
    """Pre-collated batches, served one per item (DataLoader with batch_size=None)."""

    def __init__(self, batches: list[tuple[torch.Tensor, torch.Tensor]]):
        self.batches = batches

    def __len__(self) -> int:
        return len(self.batches)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.batches[i]


class EpochTimer(L.Callback):
    """Wall time of the training epoch alone (Trainer setup and teardown excluded)."""

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.start = time.perf_counter()

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.seconds = time.perf_counter() - self.start


def plain_epoch(model: Classifier, batches: list, settings: FitSettings) -> float:
    """The ClassifierModule's training step by hand: same loss, metric tally, optimiser and schedule, same loader."""
    params = [{"params": [p for p in model.parameters() if p.requires_grad]}]
    opt = make_optimizer(params, settings.optimizer, settings.lr, settings.momentum, settings.weight_decay,
                         model.sparse_parameters())
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_factor(settings.schedule, 0, len(batches)))
    tally = torch.zeros(3)
    model.train()
    start = time.perf_counter()
    for ids, y in DataLoader(Batches(batches), batch_size=None):
        logits = model(ids)
        loss = F.cross_entropy(logits.float(), y)
        tally += torch.stack([loss.detach() * len(y), (logits.argmax(-1) == y).sum(), loss.new_tensor(len(y))])
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
    float(tally[0] / tally[2])  # the epoch's mean is read once, as the module does
    return time.perf_counter() - start


def lightning_epoch(model: Classifier, batches: list, settings: FitSettings) -> tuple[float, float]:
    """One epoch through Lightning's Trainer: (epoch seconds, seconds including Trainer setup)."""
    timer = EpochTimer()
    trainer = L.Trainer(max_epochs=1, accelerator="cpu", devices=1, deterministic=True, logger=False,
                        enable_checkpointing=False, enable_model_summary=False, enable_progress_bar=False,
                        num_sanity_val_steps=0, limit_val_batches=0, callbacks=[timer])
    start = time.perf_counter()
    trainer.fit(ClassifierModule(model, settings), DataLoader(Batches(batches), batch_size=None))
    return timer.seconds, time.perf_counter() - start


def overhead(cfg: TrainConfig, root: Path, steps: int, repeats: int) -> dict:
    """Per-step time of Lightning against a plain loop, same model, batches and optimiser."""
    tok = Tokenizer.load(root / "models/tokenizer")
    train, _, labels = load_task(root / "data/split/source", root / "data/tokens/source", tok.sha256, cfg.max_len)
    order = list(EpochShuffleSampler(len(train), cfg.seed))
    batches = [collate([train[i] for i in order[s: s + cfg.batch_size]])
               for s in range(0, min(len(order), steps * cfg.batch_size), cfg.batch_size)]
    vectors = embeddings.load(root / "models/embeddings", tok.sha256)
    seed_everything(cfg.seed)
    options, stats = encoder_statistics(cfg.model, cfg.encoder_options(), tok.pieces(), id_batches(train),
                                        train.labels, len(labels))
    config = ModelConfig(cfg.model, tok.vocab_size, vectors.shape[1], tuple(labels), cfg.hidden_dim, cfg.dropout,
                         cfg.max_len, tok.sha256, cfg.dropconnect, cfg.batch_norm, options)
    initial = Classifier(config, vectors)
    load_statistics(initial, stats)
    settings = replace(FitSettings.from_config(cfg), progress_bar=False)
    torch.use_deterministic_algorithms(True)  # as the Trainer sets it, for both
    plain, light, light_total = [], [], []
    for _ in range(repeats):
        torch.manual_seed(0)
        plain.append(plain_epoch(copy.deepcopy(initial), batches, settings))
        torch.manual_seed(0)
        epoch_s, total_s = lightning_epoch(copy.deepcopy(initial), batches, settings)
        light.append(epoch_s)
        light_total.append(total_s)
    n = len(batches)
    return {
        "model": cfg.model, "steps": n, "batch_size": cfg.batch_size, "repeats": repeats,
        "plain_ms_per_step": 1e3 * statistics.median(plain) / n,
        "lightning_ms_per_step": 1e3 * statistics.median(light) / n,
        "lightning_with_setup_ms_per_step": 1e3 * statistics.median(light_total) / n,
        "overhead_pct": 100 * (statistics.median(light) / statistics.median(plain) - 1),
        "overhead_pct_of_best_runs": 100 * (min(light) / min(plain) - 1),
        "plain_runs_s": plain, "lightning_runs_s": light, "lightning_with_setup_runs_s": light_total,
    }


def bag_vs_fasttext(cfg: TrainConfig, root: Path, repeats: int) -> dict:
    """One training epoch of the n-gram bag (Lightning, as the stage runs it) against fastText supervised.

    The same training documents, the same features as far as the two tools allow (fastText's word
    n-grams up to ``word_ngrams`` hashed into ``buckets`` rows of the same dimension; ours add the
    BPE pieces), one thread each (the stage's default), best of ``repeats``; docs/s of the epoch alone.
    """
    import tempfile

    import fasttext

    tok = Tokenizer.load(root / "models/tokenizer")
    train, _, labels = load_task(root / "data/split/source", root / "data/tokens/source", tok.sha256, cfg.max_len)
    order = list(EpochShuffleSampler(len(train), cfg.seed))
    batches = [collate([train[i] for i in order[s: s + cfg.batch_size]]) for s in range(0, len(order), cfg.batch_size)]
    vectors = embeddings.load(root / "models/embeddings", tok.sha256)
    options, stats = encoder_statistics(cfg.model, cfg.encoder_options(), tok.pieces(), id_batches(train),
                                        train.labels, len(labels))
    config = ModelConfig(cfg.model, tok.vocab_size, vectors.shape[1], tuple(labels), cfg.hidden_dim, cfg.dropout,
                         cfg.max_len, tok.sha256, cfg.dropconnect, cfg.batch_norm, options)
    settings = replace(FitSettings.from_config(cfg), progress_bar=False)
    texts = pd.read_parquet(root / "data/split/source/train.parquet")
    lines = "".join(f"__label__{'_'.join(str(y).split())} {' '.join(str(t).split())}\n"
                    for y, t in zip(texts["label"], texts["text"]))
    ours, theirs = [], []
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "train.txt"
        path.write_text(lines, encoding="utf-8")
        for _ in range(repeats):
            seed_everything(cfg.seed)
            model = Classifier(config, vectors)
            load_statistics(model, stats)
            ours.append(lightning_epoch(model, batches, settings)[0])
            start = time.perf_counter()
            fasttext.train_supervised(str(path), epoch=1, dim=vectors.shape[1], wordNgrams=max(1, cfg.bag.word_ngrams),
                                      bucket=cfg.bag.buckets, thread=1, seed=0, verbose=0)
            theirs.append(time.perf_counter() - start)
    return {"docs": len(train), "buckets": cfg.bag.buckets, "word_ngrams": cfg.bag.word_ngrams,
            "pooling": cfg.bag.pooling, "sparse": cfg.bag.sparse, "repeats": repeats,
            "ours_docs_per_second": len(train) / min(ours), "fasttext_docs_per_second": len(train) / min(theirs),
            "ours_epoch_s": min(ours), "fasttext_epoch_s": min(theirs), "ratio": min(theirs) / min(ours)}


def markdown(results: dict) -> str:
    """The results as a Markdown table."""
    lines = ["| encoder | max_len | epochs run (max) | best epoch | dev acc | test acc | test macro-F1 | fit s "
             "| s/epoch | 1-min load, start/end |", "|---|---|---|---|---|---|---|---|---|---|"]
    for name, r in results["encoders"].items():
        load = "/".join(f"{x:.1f}" for x in r["load_average_1min"]) if r["load_average_1min"] else "n/a"
        lines.append(f"| {name} | {r['max_len']} | {r['epochs_run']} ({r['max_epochs']}) | {r['best_epoch']} | "
                     f"{r['dev_accuracy']:.4f} | {r['test_accuracy']:.4f} | {r['test_macro_f1']:.4f} | "
                     f"{r['fit_seconds']:.0f} | {r['seconds_per_epoch']:.1f} | {load} |")
    if "overhead" in results:
        o = results["overhead"]
        lines += ["", f"Lightning per-step overhead ({o['model']}, {o['steps']} steps of {o['batch_size']}, median of "
                      f"{o['repeats']}): plain {o['plain_ms_per_step']:.2f} ms/step, Lightning "
                      f"{o['lightning_ms_per_step']:.2f} ms/step ({o['overhead_pct']:+.1f}%; best runs "
                      f"{o['overhead_pct_of_best_runs']:+.1f}%); with Trainer setup "
                      f"{o['lightning_with_setup_ms_per_step']:.2f} ms/step."]
    return "\n".join(lines) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--root", type=Path, default=ROOT, help="a repository after `dvc repro embed`")
    p.add_argument("--params", type=Path, default=ROOT / "params.yaml")
    p.add_argument("--encoders", nargs="*", default=list(ENCODERS), choices=list(ENCODERS))
    p.add_argument("--overhead-steps", type=int, default=300, help="0 skips the overhead measurement")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--bag-vs-fasttext", action="store_true", help="time an epoch of the bag against fastText's")
    p.add_argument("--threads", type=int, help="torch CPU threads (default: torch's); 1 is steadier on a busy machine")
    p.add_argument("--out", type=Path, default=ROOT / "bench/results/train.json")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    # A partial rerun (--encoders cnn) replaces those entries and keeps the others of an earlier run.
    results = json.loads(args.out.read_text()) if args.out.is_file() else {"encoders": {}}
    machine = {"python": platform.python_version(), "torch": torch.__version__, "lightning": L.__version__,
               "cpu_threads": torch.get_num_threads(), "processor": platform.processor() or platform.machine()}
    for name in args.encoders:
        cfg = train_config(args.params, {"model": name, **ENCODERS[name]})
        load = os.getloadavg()[0]  # other work on the machine skews the times
        results["encoders"][name] = {**run_encoder(name, cfg, args.root), "machine": machine,
                                     "load_average_1min": [load, os.getloadavg()[0]]}
        print(json.dumps({name: results["encoders"][name]}, indent=1), flush=True)
    if args.overhead_steps:
        load = os.getloadavg()[0]
        results["overhead"] = {**overhead(train_config(args.params, {}), args.root, args.overhead_steps, args.repeats),
                               "machine": machine, "load_average_1min": [load, os.getloadavg()[0]]}
        print(json.dumps({"overhead": results["overhead"]}, indent=1), flush=True)
    if args.bag_vs_fasttext:
        # 1M buckets, as fastText's bigram models use (its default is 2M): the table size that dense updates cannot afford.
        cfg = train_config(args.params, {"model": "bag", "bag": {"buckets": 1_000_000, "min_count": 0}})
        results["bag_vs_fasttext"] = {**bag_vs_fasttext(cfg, args.root, args.repeats), "machine": machine}
        print(json.dumps({"bag_vs_fasttext": results["bag_vs_fasttext"]}, indent=1), flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    args.out.with_suffix(".md").write_text(markdown(results))
    print(markdown(results))


if __name__ == "__main__":
    main()
