"""The throughput section of `make bench`: each stage against the library it wraps, one run, alternated, best of N.

bench/bench_tokenize_embed.py (tokenizer training vs HF ``tokenizers``, encoding vs
sentencepiece, embedding vs gensim), bench/bench_train.py's Lightning step vs a plain PyTorch
loop and the n-gram bag vs fastText, bench/bench_predict.py (pyfunc vs raw forward). Each runs
as a child process and writes its JSON into bench/results/; the ratios measured within one
run are the robust numbers on a shared machine. Needs the accuracy section's 20NG pipeline copy.

    .venv/bin/python bench/run.py --sections throughput
"""
from __future__ import annotations

import json
import shlex
import subprocess
import sys
import time

from pipeline import BENCH_DIR, ROOT, Bench


def run(b: Bench) -> None:
    """Run the three ratio benchmarks as child processes and record their rows (needs ``b.twenty_ng``)."""
    res = b.out / "results"
    py = sys.executable
    te_json = res / "tokenize_embed_ratios.json"
    code = ("import sys; from pathlib import Path; sys.path.insert(0, sys.argv[1]); import bench_tokenize_embed as b; "
            "b.RESULTS = Path(sys.argv[2]); sys.argv = ['bench/bench_tokenize_embed.py', *sys.argv[3:]]; b.main()")
    jobs = [
        ("tokenize_embed", [py, "-c", code, str(BENCH_DIR), str(te_json), *b.mode.tok_embed_args], te_json),
        ("train", [py, str(BENCH_DIR / "bench_train.py"), "--root", str(b.twenty_ng.work), "--params",
                   str(b.twenty_ng.work / "params.yaml"), "--encoders", "--bag-vs-fasttext",
                   *b.mode.train_overhead_args,
                   "--out", str(res / "train_overhead.json")], res / "train_overhead.json"),
        ("predict", [py, str(BENCH_DIR / "bench_predict.py"), *b.mode.predict_args, "--out",
                     str(res / "predict.json")], res / "predict.json"),
    ]
    for name, argv, path in jobs:
        if path.exists():
            path.unlink()
        start = time.perf_counter()
        proc = subprocess.run(argv, cwd=ROOT, env=b.env, capture_output=True, text=True)
        secs = time.perf_counter() - start
        print(f"  throughput {name}: rc {proc.returncode}, {secs:.0f} s", flush=True)
        if not path.is_file():
            b.notes["throughput"].append(f"{name}: no result (exit {proc.returncode}): "
                                            f"{' | '.join(proc.stderr.strip().splitlines()[-3:])}")
            continue
        r = json.loads(path.read_text())
        cmd = " ".join(["python", *[shlex.quote(str(a)) for a in argv[1:]]]) if name != "tokenize_embed" else \
            "python bench/bench_tokenize_embed.py " + " ".join(b.mode.tok_embed_args)
        cmd = cmd.replace(str(b.twenty_ng.work), "<20NG copy>").replace(f"{ROOT}/", "").replace(str(b.out), "<out>")
        if name == "tokenize_embed":
            t, e, w = r["tokenizer_training"], r["encoding"], r["word2vec"]
            mb = r["corpus"]["mb"]
            _row(b, "tokenizer training", "train_tokenizer (sentencepiece BPE)", "Hugging Face tokenizers BPE",
                 mb / t["seconds"], mb / t["hf_tokenizers_bpe_seconds"], "MB/s",
                 t["hf_tokenizers_bpe_seconds"] / t["seconds"], None, f"{r['corpus']['mb']} MB", cmd)
            _row(b, "encoding", "Tokenizer.encode_array", "sentencepiece encode (direct)",
                 e["stage_tokens_per_second"], e["direct_tokens_per_second"], "tokens/s", e["ratio"],
                 e["min_ratio"], f"{r['corpus']['tokens']:,} tokens", cmd)
            _row(b, "embedding", "train_embeddings", "gensim Word2Vec (direct)", w["stage_tokens_per_second"],
                 w["plain_gensim_tokens_per_second"], "tokens/s", w["ratio"], w["min_ratio"],
                 f"{r['corpus']['word2vec_tokens']:,} pieces x {r['params']['embed']['epochs']} epochs; "
                 f"identical vectors: {w['identical_vectors']}", cmd)
        elif name == "train":
            o = r["overhead"]
            _row(b, "training step", "Lightning Trainer + ClassifierModule", "plain PyTorch loop",
                 1e3 / o["lightning_ms_per_step"], 1e3 / o["plain_ms_per_step"], "steps/s",
                 o["plain_ms_per_step"] / o["lightning_ms_per_step"], None,
                 f"{o['model']}, {o['steps']} steps of {o['batch_size']}; with Trainer setup "
                 f"{o['lightning_with_setup_ms_per_step']:.2f} ms/step", cmd)
            if "bag_vs_fasttext" in r:
                bag = r["bag_vs_fasttext"]
                _row(b, "bag training epoch", f"n-gram bag ({bag['pooling']}, word {bag['word_ngrams']}-grams, "
                     f"sparse={bag['sparse']})", "fastText supervised (same n-grams and buckets)",
                     bag["ours_docs_per_second"], bag["fasttext_docs_per_second"], "docs/s", bag["ratio"], None,
                     f"{bag['docs']:,} 20NG docs, {bag['buckets']:,} buckets, 1 thread each, best of {bag['repeats']}",
                     cmd)
        else:
            _row(b, "prediction", "pyfunc (mlflow.pyfunc.load_model)", "raw forward (pre-tokenized batches)",
                 r["pyfunc_docs_per_second"], r["raw_forward_docs_per_second"], "docs/s",
                 r["pyfunc_over_raw_forward"], None, f"{r['docs']} docs, batch {r['batch_size']}", cmd)
            _row(b, "prediction", "pyfunc (mlflow.pyfunc.load_model)", "predict_proba (tokenize + forward)",
                 r["pyfunc_docs_per_second"], r["predict_proba_docs_per_second"], "docs/s",
                 r["pyfunc_over_predict_proba"], r["min_ratio"],
                 f"same predictions: {r['same_predictions']}", cmd)


def _row(b: Bench, what, ours, peer, ours_rate, peer_rate, unit, ratio, target, size, cmd) -> None:
    b.throughput.append({"stage": what, "ours": ours, "peer": peer, "ours_rate": ours_rate,
                         "peer_rate": peer_rate, "unit": unit, "ratio": ratio, "target_ratio": target,
                         "size": size, "command": cmd})


if __name__ == "__main__":  # the same as `bench/run.py --sections throughput ...`
    import sys

    import run

    sys.exit(run.main(["--sections", "throughput", *sys.argv[1:]]))
