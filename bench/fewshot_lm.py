"""Few-shot on the target task: a transformer whose encoder comes from the pretrain stage's masked LM against the
same transformer with word2vec embeddings (and the rest random), with the finetune stage's own recipe.

Neither is source-trained: this isolates what LM pretraining adds over word2vec. ``--k all`` adds the full
training split, fitted with finetune's full-data recipe (batch_size, max_epochs, patience; ``--lr``) instead
of the few-shot one: the "with all data, not worse" half of the question. Needs the embed stage's outputs
and a transformer pretrain output (e.g. ``python -m stages.pretrain`` with train.model: transformer). Writes
a JSON summary (mean +- std dev accuracy and macro-F1 per k and variant) to --out.

    python bench/fewshot_lm.py --lm /tmp/pt_transformer/out --out bench/results/fewshot_lm.json
"""
from __future__ import annotations

import argparse
import json
import logging
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from reprotext import embeddings
from reprotext.config import FinetuneConfig, TrainConfig, load_section
from reprotext.models import Classifier, ModelConfig
from reprotext.pretraining import read_meta
from reprotext.tokenizer import Tokenizer
from reprotext.training import FitSettings, seed_everything
from reprotext.training.data import load_task
from reprotext.transfer import fit_transfer, from_language_model, halve, sample_per_class, score, subset


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--lm", required=True, help="a pretrain output of a transformer")
    p.add_argument("--params", default="params.yaml")
    p.add_argument("--k", nargs="+", default=["1", "5", "10"],
                   help="examples per class, or 'all' for the whole training split")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--max-len", type=int, default=128)
    # The transformer's own LRs: params.yaml's finetune LRs (0.01, few-shot 0.1) are the bag's, and a
    # transformer diverges at them (every fit's best epoch the first, dev accuracy down to 0.07 at k = 1).
    p.add_argument("--lr", type=float, default=0.003, help="the head's LR of the full-data fits (--k all)")
    p.add_argument("--fewshot-lr", type=float, default=0.01, help="the head's LR of the few-shot fits")
    p.add_argument("--out", required=True)
    args = p.parse_args()
    bad = [k for k in args.k if k != "all" and not (k.isdigit() and int(k) > 0)]
    if bad:
        p.error(f"--k takes positive integers or 'all', got {' '.join(bad)}")
    args.k = [k if k == "all" else int(k) for k in args.k]
    logging.basicConfig(level=logging.WARNING)
    ft = load_section("finetune", FinetuneConfig, args.params)
    train_cfg = load_section("train", TrainConfig, args.params)
    tok = Tokenizer.load("models/tokenizer")
    meta = read_meta(args.lm, tok.sha256)
    train_ds, dev_ds, labels = load_task(Path("data/split/target"), Path("data/tokens/target"), tok.sha256,
                                         args.max_len)
    w2v = embeddings.load("models/embeddings", tok.sha256)
    config = ModelConfig("transformer", tok.vocab_size, w2v.shape[1], tuple(labels), dropout=ft.dropout,
                         max_len=args.max_len, tokenizer_sha256=tok.sha256, encoder=meta["encoder"])
    assert meta["encoder"] == train_cfg.transformer.model_dump(mode="json"), "the LM was pretrained with other options"
    shape = Classifier(config)  # the architecture from_language_model copies
    builders = {"word2vec": lambda: Classifier(config, w2v),
                "lm_pretrained": lambda: from_language_model(shape, labels, ft.dropout, w2v, args.lm, tok.sha256)}
    stop_idx, score_idx = halve(dev_ds.labels, ft.seed)
    dev_stop, dev_score = subset(dev_ds, stop_idx), subset(dev_ds, score_idx)
    few = FitSettings(args.fewshot_lr, ft.weight_decay, ft.fewshot_batch_size,
                      ft.fewshot_max_epochs or ft.max_epochs,
                      ft.patience if ft.fewshot_patience is None else ft.fewshot_patience, ft.seed, threads=ft.threads,
                      progress_bar=False)
    full = FitSettings(args.lr, ft.weight_decay, ft.batch_size, ft.max_epochs, ft.patience, ft.seed, threads=ft.threads,
                       progress_bar=False)
    rows = []
    for k in args.k:
        for seed in args.seeds:
            train_k = train_ds if k == "all" else subset(train_ds, sample_per_class(train_ds.labels, k, seed))
            for variant, build in builders.items():
                seed_everything(seed)
                model = build()
                start = time.perf_counter()
                result, _ = fit_transfer(model, train_k, dev_stop, replace(full if k == "all" else few, seed=seed),
                                         ft.warmup_epochs, ft.unfreeze_every, ft.encoder_lr_factor)
                s = score(model, dev_score, labels)
                rows.append({"k": k, "seed": seed, "variant": variant, "best_epoch": result.best_epoch,
                             "seconds": round(time.perf_counter() - start, 1), **s})
                print(json.dumps(rows[-1]), flush=True)
    summary = {}
    for k in args.k:
        for variant in builders:
            part = [r for r in rows if r["k"] == k and r["variant"] == variant]
            acc, f1 = np.array([r["accuracy"] for r in part]), np.array([r["macro_f1"] for r in part])
            summary[f"k{k}/{variant}"] = {"accuracy_mean": acc.mean(),
                                          "accuracy_std": acc.std(ddof=1) if len(acc) > 1 else 0.0,
                                          "macro_f1_mean": f1.mean(), "seeds": len(part)}
    out = {"lm": {"objective": meta["objective"],
                  "dev_perplexity_by_epoch": [r["dev/perplexity"] for r in meta["history"]],
                  "unigram_perplexity": meta["unigram_perplexity"], "max_tokens": meta["config"]["max_tokens"]},
           "max_len": args.max_len, "lr": args.lr, "fewshot_lr": args.fewshot_lr, "dev_score_docs": len(dev_score),
           "summary": summary, "runs": rows}
    Path(args.out).write_text(json.dumps(out, indent=2) + "\n")
    for key, v in summary.items():
        print(f"{key:>24}: accuracy {v['accuracy_mean']:.3f} +- {v['accuracy_std']:.3f}, "
              f"macro-F1 {v['macro_f1_mean']:.3f}")


if __name__ == "__main__":
    main()
