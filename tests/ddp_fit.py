"""Fit a small classifier on the synthetic corpus with N CPU processes (gloo); rank 0 writes the result as JSON.

``dense``: a plain bag under SGD; ``sparse``: the default bag of params.yaml (tfidf, word bigrams, sparse
tables), whose sparse gradients DDP all-reduces, under AdamW + SparseAdam, on training documents of which
every other one is empty (``EMPTY``) so that some steps give one process no feature at all.

Run as a script by tests/test_training.py: Lightning's DDP launcher re-runs this
file once per extra process, as it would re-run a stage. ``word_task`` is also
the tests' tokenizer-free task.
"""
import json
import sys
from pathlib import Path

from lightning.pytorch.utilities.rank_zero import rank_zero_only

from conftest import make_corpus
from reprotext.models import Classifier, ModelConfig, encoder_statistics, load_statistics
from reprotext.tokenizer import TokenArray
from reprotext.training import FitSettings, TokenDataset, encode_labels, fit, seed_everything
from reprotext.training.data import id_batches


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


SPARSE_BAG = {"pooling": "tfidf", "word_ngrams": 2, "min_count": 2, "sparse": True}
SPARSE_BATCH = 6


def empty(index: int) -> bool:
    """Whether the sparse run's training document ``index`` is emptied."""
    return index % 2 == 0


def with_empty_documents(ds: TokenDataset) -> TokenDataset:
    docs = [[] if empty(i) else ds.tokens[i].tolist() for i in range(len(ds))]
    return TokenDataset(TokenArray.from_lists(docs), ds.labels.tolist(), ds.max_len)


def main(devices: int, out: Path, kind: str = "dense") -> None:
    train, dev, known, vocab_size = word_task()  # 126 documents: two processes split them without padding
    encoder, stats = {}, {}
    if kind == "sparse":
        train = with_empty_documents(train)
        pieces = ["<s>"] * 6 + [f"\u2581w{i}" for i in range(vocab_size - 6)]  # every id a word
        encoder, stats = encoder_statistics("bag", SPARSE_BAG, pieces, id_batches(train))
    seed_everything(0)
    model = Classifier(ModelConfig("bag", vocab_size, 16, tuple(known), dropout=0.0, encoder=encoder))
    load_statistics(model, stats)
    optimiser = ({"optimizer": "sgd", "lr": 0.5, "batch_size": 16} if kind == "dense"
                 else {"optimizer": "adamw", "lr": 0.05, "batch_size": SPARSE_BATCH})
    settings = FitSettings(weight_decay=0.0, max_epochs=3, patience=5, seed=0, **optimiser,
                           devices=devices, strategy="ddp" if devices > 1 else "auto", progress_bar=False)
    result = fit(model, train, dev, settings)
    if rank_zero_only.rank == 0:
        weights = {k: v.double().sum().item() for k, v in model.state_dict().items() if v.is_floating_point()}
        out.write_text(json.dumps({"history": result.history, "steps": result.steps, "weights": weights}))


if __name__ == "__main__":
    main(int(sys.argv[1]), Path(sys.argv[2]), *sys.argv[3:])
