"""A tiny test collection in the BEIR layout, written by the tests: topics, documents, claims and judgments."""
from __future__ import annotations

import json
import random
from pathlib import Path

TOPICS = {
    "heart": "cardiac artery blood pressure heart stroke cholesterol vessel",
    "brain": "neuron cortex memory brain synapse cognition dementia",
    "lung": "airway asthma breathing lung oxygen pulmonary smoking",
    "bone": "fracture bone calcium density osteoporosis skeleton",
    "liver": "hepatic liver enzyme alcohol cirrhosis bile",
    "skin": "melanoma skin dermal rash sunlight eczema",
}
COMMON = "the a of and in patients study results with was were".split()


def write_beir(folder: Path, docs_per_topic: int = 12, queries_per_topic: int = 6, seed: int = 0,
               dev: bool = False) -> Path:
    """corpus.jsonl, queries.jsonl and qrels/{train,test}.tsv (and dev.tsv) under ``folder``; returns it.

    Each query is relevant to one document of its topic and shares several of that document's words.
    """
    rng = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "qrels").mkdir(exist_ok=True)
    docs, queries, qrels = [], [], []
    for t, (topic, words) in enumerate(TOPICS.items()):
        vocab = words.split()
        for i in range(docs_per_topic):
            body = [rng.choice(vocab) if rng.random() < 0.5 else rng.choice(COMMON) for _ in range(rng.randint(20, 40))]
            body.append(f"marker{t}x{i}")
            docs.append({"_id": f"d{t}-{i}", "title": f"{topic} {rng.choice(vocab)} {rng.choice(vocab)}",
                         "text": " ".join(body)})
        for j in range(queries_per_topic):
            target = rng.randrange(docs_per_topic)
            doc_words = docs[t * docs_per_topic + target]["text"].split()
            claim = [w for w in doc_words if w not in COMMON][:6] + [rng.choice(COMMON)]
            qid = f"q{t}-{j}"
            queries.append({"_id": qid, "text": " ".join(claim), "metadata": {}})
            qrels.append((qid, f"d{t}-{target}"))
    with open(folder / "corpus.jsonl", "w") as f:
        f.writelines(json.dumps(d) + "\n" for d in docs)
    with open(folder / "queries.jsonl", "w") as f:
        f.writelines(json.dumps(q) + "\n" for q in queries)
    rng.shuffle(qrels)
    n = len(qrels)
    parts = {"test": qrels[: n // 4], "train": qrels[n // 4:]}
    if dev:
        parts = {"test": qrels[: n // 4], "dev": qrels[n // 4: n // 2], "train": qrels[n // 2:]}
    for split, rows in parts.items():
        (folder / "qrels" / f"{split}.tsv").write_text(
            "query-id\tcorpus-id\tscore\n" + "".join(f"{q}\t{d}\t1\n" for q, d in rows))
    return folder
