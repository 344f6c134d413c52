"""Benchmark tokenize and embed against the libraries they wrap, on ~100 MB of text.

The corpus is the builtin 20 Newsgroups text (27 MB) copied until it reaches
``--mb`` megabytes; every copy after the first has its documents shuffled and
5% of its words changed in one letter (seeded), so that the copies bring new
word types, as more real text would. Each comparison runs in this one process on
the same text, the two sides alternating, best of ``--repeats``; params.yaml's
``tokenize`` and ``embed`` sections give every setting.

- tokenizer training: ``train_tokenizer`` on all of it, budget 60 s; and, for
  reference, Hugging Face ``tokenizers`` BPE (same vocabulary size, specials and
  thread count, Metaspace pre-tokenizer) on the same documents.
- encoding: ``Tokenizer.encode_array`` (what the tokenize stage runs) against one
  ``SentencePieceProcessor.encode(texts, out_type=int, num_threads=N)`` call;
  ratio of throughputs at least 0.8.
- word2vec: ``train_embeddings`` over the token ids of the first ``--embed-mb``
  megabytes (what the embed stage runs) against gensim ``Word2Vec`` on the same
  pieces as in-memory lists of strings; ratio at least 0.9, and the two must
  give bit-identical vectors.

    .venv/bin/python bench/bench_tokenize_embed.py [--mb 100] [--embed-mb 10] [--repeats 2]

Needs the ``bench`` extra (Hugging Face ``tokenizers``). Writes bench/results/tokenize_embed.json.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import random
import string
import sys
import tempfile
from importlib.metadata import version
from pathlib import Path

import numpy as np

from reprotext.config import EmbedConfig, TokenizeConfig, load_section
from reprotext.data.sources import read_builtin
from reprotext.embeddings import PieceCorpus, train_embeddings
from reprotext.tokenizer import TokenArray, train_tokenizer
from timing import best_of  # bench/ is on sys.path when a bench script runs

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench/results/tokenize_embed.json"
TRAIN_BUDGET_S, MIN_ENCODE_RATIO, MIN_EMBED_RATIO = 60.0, 0.8, 0.9
TYPO_RATE = 0.05


def make_corpus(mb: float, seed: int = 0) -> list[str]:
    """At least ``mb`` megabytes of 20 Newsgroups text: the corpus, then perturbed, shuffled copies of it."""
    news = read_builtin("20newsgroups")["text"].tolist()
    out, size, copy = [], 0, 0
    while size < mb * 1e6:
        rng = random.Random(seed + copy)
        docs = news if copy == 0 else [_typos(t, rng) for t in rng.sample(news, len(news))]
        for doc in docs:
            out.append(doc)
            size += len(doc.encode("utf-8"))
            if size >= mb * 1e6:
                break
        copy += 1
    return out


def _typos(text: str, rng: random.Random) -> str:
    words = text.split(" ")
    for i, word in enumerate(words):
        if word and rng.random() < TYPO_RATE:
            at = rng.randrange(len(word))
            words[i] = word[:at] + rng.choice(string.ascii_lowercase) + word[at + 1:]
    return " ".join(words)



def hf_bpe(texts: list[str], cfg: TokenizeConfig) -> None:
    """Train Hugging Face tokenizers' BPE as close to the project's sentencepiece settings as it goes."""
    from tokenizers import Tokenizer as HFTokenizer
    from tokenizers import models, pre_tokenizers, trainers

    hf = HFTokenizer(models.BPE(unk_token="<unk>", byte_fallback=cfg.byte_fallback))
    hf.pre_tokenizer = pre_tokenizers.Metaspace()
    specials = ["<pad>", "<unk>", "<s>", "</s>", "[CLS]", "[MASK]", *cfg.extra_symbols]
    hf.train_from_iterator(texts, trainers.BpeTrainer(vocab_size=cfg.vocab_size, special_tokens=specials,
                                                      show_progress=False), length=len(texts))


def word2vec_plain(sentences: list[list[str]], cfg: EmbedConfig):
    """gensim's Word2Vec as a user would call it, with the embed stage's params."""
    from gensim.models import Word2Vec

    return Word2Vec(sentences, vector_size=cfg.dim, window=cfg.window, negative=cfg.negative, hs=0,
                    sg=1 if cfg.algorithm == "skipgram" else 0, min_count=cfg.min_count, sample=cfg.sample,
                    workers=cfg.workers, seed=cfg.seed, epochs=cfg.epochs)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--mb", type=float, default=100.0, help="corpus size for tokenizer training and encoding")
    p.add_argument("--embed-mb", type=float, default=10.0, help="leading part of the corpus for word2vec")
    p.add_argument("--repeats", type=int, default=2)
    args = p.parse_args()
    tok_cfg = load_section("tokenize", TokenizeConfig, ROOT / "params.yaml")
    emb_cfg = load_section("embed", EmbedConfig, ROOT / "params.yaml")
    # Hugging Face tokenizers (Rust rayon) would take every core; give it sentencepiece's thread count.
    os.environ["RAYON_NUM_THREADS"] = str(tok_cfg.threads)
    load_before = os.getloadavg()[0]
    texts = make_corpus(args.mb)
    mb = sum(len(t.encode("utf-8")) for t in texts) / 1e6
    print(f"corpus: {len(texts)} documents, {mb:.1f} MB", file=sys.stderr)

    with tempfile.TemporaryDirectory(prefix="bench-tok-") as tmp:
        holder = {}

        def ours_train() -> None:
            holder["tok"] = train_tokenizer(texts, tok_cfg, Path(tmp) / "tok")

        train_s, hf_s = best_of(args.repeats, ours_train, lambda: hf_bpe(texts, tok_cfg))
        tok = holder["tok"]
        print(f"tokenizer training: {train_s:.1f} s (HF tokenizers BPE {hf_s:.1f} s)", file=sys.stderr)

        n_tokens = int(tok.encode_array(texts, tok_cfg.threads).offsets[-1])
        direct_s, stage_s = best_of(args.repeats,
                                    lambda: tok.sp.encode(texts, out_type=int, num_threads=tok_cfg.threads),
                                    lambda: tok.encode_array(texts, tok_cfg.threads))
        print(f"encoding: direct {n_tokens / direct_s:,.0f} tok/s, stage {n_tokens / stage_s:,.0f} tok/s",
              file=sys.stderr)

        head, size = [], 0
        for t in texts:
            if size >= args.embed_mb * 1e6:
                break
            head.append(t)
            size += len(t.encode("utf-8"))
        arr: TokenArray = tok.encode_array(head, tok_cfg.threads)
        corpus = PieceCorpus([arr], tok.pieces())
        sentences = list(corpus)  # plain gensim gets them in memory, built outside the timing
        models = {}

        def ours_embed() -> None:
            models["ours"] = train_embeddings(corpus, emb_cfg)

        def plain_embed() -> None:
            models["plain"] = word2vec_plain(sentences, emb_cfg)

        plain_s, ours_s = best_of(args.repeats, plain_embed, ours_embed)
        plain_wv, ours_vectors = models["plain"].wv, models["ours"].vectors
        identical = all(np.array_equal(ours_vectors[tok.sp.piece_to_id(k)], plain_wv[k]) for k in plain_wv.index_to_key)
        w2v_tokens = corpus.n_tokens() * emb_cfg.epochs
        print(f"word2vec: plain {w2v_tokens / plain_s:,.0f} tok/s, stage {w2v_tokens / ours_s:,.0f} tok/s",
              file=sys.stderr)

    encode_ratio, embed_ratio = direct_s / stage_s, plain_s / ours_s
    results = {
        "command": " ".join(["python", "bench/bench_tokenize_embed.py", *sys.argv[1:]]),
        "machine": {"cpus": os.cpu_count(), "load_avg_1min_before": load_before,
                    "load_avg_1min_after": os.getloadavg()[0], "python": platform.python_version(),
                    **{pkg: version(pkg) for pkg in ("sentencepiece", "gensim", "tokenizers", "numpy")}},
        "corpus": {"documents": len(texts), "mb": round(mb, 1), "tokens": n_tokens,
                   "word2vec_documents": len(head), "word2vec_mb": round(size / 1e6, 1),
                   "word2vec_tokens": corpus.n_tokens()},
        "params": {"tokenize": tok_cfg.model_dump(), "embed": emb_cfg.model_dump()},
        "repeats": args.repeats,
        "tokenizer_training": {"seconds": train_s, "hf_tokenizers_bpe_seconds": hf_s, "budget_seconds": TRAIN_BUDGET_S,
                               "ok": train_s < TRAIN_BUDGET_S},
        "encoding": {"direct_tokens_per_second": n_tokens / direct_s, "stage_tokens_per_second": n_tokens / stage_s,
                     "ratio": encode_ratio, "min_ratio": MIN_ENCODE_RATIO, "ok": encode_ratio >= MIN_ENCODE_RATIO},
        "word2vec": {"plain_gensim_seconds": plain_s, "stage_seconds": ours_s,
                     "plain_gensim_tokens_per_second": w2v_tokens / plain_s, "stage_tokens_per_second": w2v_tokens / ours_s,
                     "ratio": embed_ratio, "min_ratio": MIN_EMBED_RATIO, "identical_vectors": identical,
                     "ok": embed_ratio >= MIN_EMBED_RATIO and identical},
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    print(json.dumps({k: results[k] for k in ("tokenizer_training", "encoding", "word2vec")}, indent=2))
    if not all(results[k]["ok"] for k in ("tokenizer_training", "encoding", "word2vec")):
        sys.exit(1)


if __name__ == "__main__":
    main()
