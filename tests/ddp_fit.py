"""Fit a small classifier on the synthetic corpus with N CPU processes (gloo); rank 0 writes the result as JSON.

Run as a script by tests/test_training.py: Lightning's DDP launcher re-runs this
file once per extra process, as it would re-run a stage. ``word_task`` is also
the tests' tokenizer-free task.
"""
import json
import sys
from pathlib import Path

from lightning.pytorch.utilities.rank_zero import rank_zero_only

from conftest import make_corpus
from reprotext.models import Classifier, ModelConfig
from reprotext.tokenizer import TokenArray
from reprotext.training import FitSettings, TokenDataset, encode_labels, fit, seed_everything


def word_task(train_docs: int = 126) -> tuple[TokenDataset, TokenDataset, list[str], int]:
    """The synthetic corpus, one id per word: train (the first ``train_docs``), dev (the rest), labels, vocab size."""
    texts, labels = make_corpus()
    vocab = {w: i + 6 for i, w in enumerate(sorted({w for t in texts for w in t.split()}))}  # after the specials
    arr = TokenArray.from_lists([[vocab[w] for w in t.split()] for t in texts])
    known = sorted(set(labels))
    y = encode_labels(labels, known, "corpus")
    train = TokenDataset(TokenArray(arr.ids, arr.offsets[: train_docs + 1]), y[:train_docs], 64)
    dev = TokenDataset(TokenArray(arr.ids, arr.offsets[train_docs:]), y[train_docs:], 64)
    return train, dev, known, len(vocab) + 6


def main(devices: int, out: Path) -> None:
    train, dev, known, vocab_size = word_task()  # 126 documents: two processes split them without padding
    seed_everything(0)
    model = Classifier(ModelConfig("bag", vocab_size, 16, tuple(known), dropout=0.0))
    settings = FitSettings(lr=0.5, weight_decay=0.0, batch_size=16, max_epochs=3, patience=5, seed=0, optimizer="sgd",
                           devices=devices, strategy="ddp" if devices > 1 else "auto", progress_bar=False)
    result = fit(model, train, dev, settings)
    if rank_zero_only.rank == 0:
        out.write_text(json.dumps({"history": result.history, "steps": result.steps}))


if __name__ == "__main__":
    main(int(sys.argv[1]), Path(sys.argv[2]))
