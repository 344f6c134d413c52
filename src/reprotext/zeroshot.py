"""Zero-shot classification: a document goes to the label whose description vector is nearest (cosine).

A document's vector and a description's vector are both the mean of their
pieces' embeddings (word2vec, or the embedding table of a trained encoder).
Both are centred on the mean vector of the documents being classified (no
labels used): mean piece vectors share a large common direction (frequent
pieces), which otherwise dominates every cosine.
"""
from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

import numpy as np

from reprotext.errors import ConfigError
from reprotext.tokenizer import PAD, TokenArray, Tokenizer


# A few words per label of the builtin label sets (the corpora's texts are lowercase letters only): what a
# user would type to describe the class, written from the label names and the corpora's documentation,
# never from test documents. A label set that is a subset of one of these gets its descriptions.
BUILTIN_DESCRIPTIONS: dict[str, dict[str, str]] = {
    "reuters-r8": {
        "acq": "acquisition merger takeover company acquire shares stake buy",
        "crude": "crude oil petroleum barrels opec prices energy",
        "earn": "earnings profit net income per share dividend quarter",
        "grain": "grain wheat corn harvest crop agriculture tonnes",
        "interest": "interest rates bank rate cut central bank lending",
        "money-fx": "money foreign exchange currency dollar yen market",
        "ship": "shipping ships vessels port cargo freight tanker",
        "trade": "trade deficit surplus exports imports tariffs",
    },
    "20newsgroups": {
        "alt.atheism": "atheism atheists god religion belief",
        "comp.graphics": "computer graphics images rendering software",
        "comp.os.ms-windows.misc": "microsoft windows operating system dos",
        "comp.sys.ibm.pc.hardware": "ibm pc hardware drives motherboard",
        "comp.sys.mac.hardware": "apple mac macintosh hardware",
        "comp.windows.x": "x window system server motif",
        "misc.forsale": "for sale price offer shipping",
        "rec.autos": "cars automobiles engine driving",
        "rec.motorcycles": "motorcycles bikes riding helmet",
        "rec.sport.baseball": "baseball game players season pitching",
        "rec.sport.hockey": "hockey game players season nhl",
        "sci.crypt": "cryptography encryption keys security privacy",
        "sci.electronics": "electronics circuits voltage power",
        "sci.med": "medicine medical doctors disease patients",
        "sci.space": "space nasa orbit launch shuttle",
        "soc.religion.christian": "christian church jesus bible faith",
        "talk.politics.guns": "guns firearms weapons gun control",
        "talk.politics.mideast": "middle east israel arab politics",
        "talk.politics.misc": "politics government president tax",
        "talk.religion.misc": "religion morality christian god",
    },
}


def default_description(label: str) -> str:
    """A label name as words: ``money-fx`` -> ``money fx``, ``sci.space`` -> ``sci space``."""
    return " ".join(w for w in re.split(r"[\W_]+", label) if w) or label


def descriptions(labels: Sequence[str], overrides: Mapping[str, str]) -> list[str]:
    """One description per label: ``overrides[label]`` where given, else the builtin description of a builtin
    label set (``BUILTIN_DESCRIPTIONS``), else the label name as words."""
    unknown = sorted(set(overrides) - set(labels))
    if unknown:
        raise ConfigError(f"finetune.zeroshot_descriptions names label {unknown[0]!r}, which the target task does not "
                          f"have; use one of {', '.join(labels)}")
    builtin = next((d for d in BUILTIN_DESCRIPTIONS.values() if set(labels) <= set(d)), {})
    return [overrides.get(label) or builtin.get(label) or default_description(label) for label in labels]


def mean_vectors(vectors: np.ndarray, docs: TokenArray, max_len: int | None = None) -> np.ndarray:
    """(N, D): the mean embedding of each document's pieces (its first ``max_len``); zeros for an empty one."""
    out = np.zeros((len(docs), vectors.shape[1]), dtype=np.float64)
    for i in range(len(docs)):
        ids = np.asarray(docs[i][:max_len])
        ids = ids[ids != PAD]
        if len(ids):
            out[i] = vectors[ids].mean(0)
    return out


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def scores(doc_vecs: np.ndarray, label_vecs: np.ndarray, center: bool = True) -> np.ndarray:
    """(N, C) cosine similarities of documents to labels, optionally after centring on the documents' mean."""
    if center and len(doc_vecs):
        mean = doc_vecs.mean(0, keepdims=True)
        doc_vecs, label_vecs = doc_vecs - mean, label_vecs - mean
    return _unit(doc_vecs) @ _unit(label_vecs).T


def classify(vectors: np.ndarray, tokenizer: Tokenizer, docs: TokenArray, labels: Sequence[str],
             label_texts: Sequence[str], center: bool = True, max_len: int | None = None) -> np.ndarray:
    """(N, C) cosine scores of ``docs`` against the descriptions ``label_texts`` of ``labels`` (argmax = prediction)."""
    label_docs = TokenArray.from_lists(tokenizer.encode(list(label_texts)))
    empty = [labels[i] for i in range(len(labels)) if len(label_docs[i]) == 0]
    if empty:
        raise ConfigError(f"zero-shot description of label {empty[0]!r} has no pieces; give it words in "
                          "finetune.zeroshot_descriptions")
    return scores(mean_vectors(vectors, docs, max_len), mean_vectors(vectors, label_docs), center)


def softmax(x: np.ndarray, temperature: float = 0.1) -> np.ndarray:
    """Row-wise softmax of ``x / temperature`` (cosines as pseudo-probabilities for calibration plots)."""
    z = x / temperature
    z = z - z.max(1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(1, keepdims=True)
