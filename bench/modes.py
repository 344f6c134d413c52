"""The sizes of a bench run: the full one (`make bench`) and the smoke one (`bench/run.py --smoke`, ~3 min).

The candidates for our configuration and the published numbers are in accuracy.py; the
params of the scaling runs are SCALE_PARAMS here.
"""
from __future__ import annotations

from accuracy import CANDIDATES, DATASET_CANDIDATES, SMOKE_CANDIDATES, SPLIT
from pipeline import Mode

# The scaling runs' params.yaml overrides, so that 50x (941k documents) fits the budget on 2 shared cores: one
# CBOW word2vec epoch over half-size vectors, one training epoch in batches of 512; the data stages run with
# params.yaml as it is.
SCALE_PARAMS = {"embed": {"algorithm": "cbow", "epochs": 1, "dim": 50}, "train": {"max_epochs": 1, "batch_size": 512}}


def full_mode(budget_min: float) -> Mode:
    return Mode(
        smoke=False, budget_s=budget_min * 60, params={"split": SPLIT},
        datasets=("20ng", "trec", "r52", "imdb"),
        # 5 word2vec epochs over ~22M pieces would take ~10 min on 2 cores: one epoch for IMDb (reported).
        imdb_embed={"epochs": 1},
        tfidf_c=(1.0, 10.0, 100.0), svm_c=(0.1, 0.3, 1.0, 3.0), char_svm_c=(0.1, 0.3, 1.0),
        cnb_alpha=(0.01, 0.03, 0.1, 0.3, 1.0),
        fasttext_grid=tuple((e, lr, n) for lr in (0.1, 0.5, 1.0) for e in (5, 15) for n in (1, 2)),
        tok_embed_args=["--mb", "27", "--embed-mb", "4", "--repeats", "2"],
        train_overhead_args=["--overhead-steps", "200", "--repeats", "2"],
        predict_args=["--docs", "2000", "--repeats", "3"],
        scale_base_docs=None, scale_factors=(1, 10, 50),
        scale_params=SCALE_PARAMS, candidates=CANDIDATES, dataset_candidates=DATASET_CANDIDATES,
    )


def smoke_mode(budget_min: float) -> Mode:
    tiny = {"prepare": {"max_docs": 300}, "tokenize": {"vocab_size": 600}, "embed": {"dim": 16, "epochs": 1},
            "train": {"max_epochs": 1, "lr": 0.1, "bag": {"buckets": 20_000}}, "finetune": {"max_epochs": 1, "lr": 0.1}, "split": SPLIT}
    return Mode(
        smoke=True, budget_s=budget_min * 60, params=tiny,
        datasets=("20ng", "imdb"),  # R52 takes the same builtin path as 20NG, TREC the same file path as IMDb
        imdb_embed={}, tfidf_c=(1.0, 10.0), svm_c=(0.1, 1.0), char_svm_c=(0.1, 1.0), cnb_alpha=(0.1, 1.0),
        fasttext_grid=((2, 0.05, 1), (2, 0.05, 2), (2, 0.02, 1)),
        tok_embed_args=["--mb", "0.3", "--embed-mb", "0.1", "--repeats", "1"],
        train_overhead_args=["--overhead-steps", "10", "--repeats", "1"],
        predict_args=["--docs", "200", "--repeats", "1", "--vocab-size", "600"],
        scale_base_docs=400, scale_factors=(1, 10), candidates=SMOKE_CANDIDATES,
        scale_params={"tokenize": {"vocab_size": 600}, "embed": {"dim": 16, "epochs": 1}, "train": {"max_epochs": 1}},
        unlabeled_lines=300, dataset_candidates={"imdb": {"cnn": {"model": "cnn", "max_len": 128}}},
    )
