"""Shared fixtures: a small synthetic labelled corpus and a tokenizer trained on it."""
from __future__ import annotations

import random
from pathlib import Path

import pytest
from repo_copy import copy_repo, sh

from reprotext.config import TokenizeConfig
from reprotext.tokenizer import Tokenizer, train_tokenizer

TOPICS = {
    "space": "orbit rocket launch planet moon shuttle nasa astronaut telescope satellite gravity",
    "sport": "goal match season player coach league score team stadium referee championship",
    "cars": "engine wheel brake driver highway dealer mileage transmission sedan battery garage",
}
COMMON = "the a of and to in is that it for with as was on be this by at"


def make_corpus(n_per_class: int = 60, seed: int = 0) -> tuple[list[str], list[str]]:
    """Documents whose words come mostly from their class's topic list, plus common words."""
    rng = random.Random(seed)
    common = COMMON.split()
    texts, labels = [], []
    for label, words in TOPICS.items():
        vocab = words.split()
        for _ in range(n_per_class):
            n = rng.randint(8, 40)
            doc = [rng.choice(vocab) if rng.random() < 0.6 else rng.choice(common) for _ in range(n)]
            texts.append(" ".join(doc))
            labels.append(label)
    order = list(range(len(texts)))
    rng.shuffle(order)
    return [texts[i] for i in order], [labels[i] for i in order]


@pytest.fixture(scope="session")
def corpus() -> tuple[list[str], list[str]]:
    return make_corpus()


@pytest.fixture(scope="session")
def tokenizer(corpus, tmp_path_factory) -> Tokenizer:
    texts, _ = corpus
    extra = ["Привет мир", "日本語のテキスト", "emoji 😀 ok", "שלום עולם"]
    return train_tokenizer(texts + extra, TokenizeConfig(vocab_size=400), tmp_path_factory.mktemp("tok"))


@pytest.fixture(scope="session")
def pipeline(tmp_path_factory) -> Path:
    """A git copy of this repository with tiny params, after one real `dvc repro`."""
    dest = copy_repo(tmp_path_factory.mktemp("pipeline"))
    sh(["dvc", "repro"], dest)
    return dest


@pytest.fixture(scope="session")
def template_db(tmp_path_factory) -> Path:
    """An MLflow SQLite store with its schema migrated, copied into each stage run's directory so runs start fast."""
    import mlflow

    path = tmp_path_factory.mktemp("mlflow") / "mlflow.db"
    mlflow.set_tracking_uri(f"sqlite:///{path}")
    mlflow.search_experiments()
    return path
