"""pretrain: the chosen encoder (train.model) as a language model on the train splits + unlabeled text.

Dev text only scores perplexity; test text is never read. bag and cnn take word2vec as their pretraining
(see reprotext.pretraining.artifact): the stage then writes a marker the train stage understands.
"""
from pathlib import Path

from reprotext import embeddings, stage
from reprotext.config import PretrainConfig, TrainConfig, load_section
from reprotext.io import atomic_dir, write_json
from reprotext.pretraining import (OBJECTIVES, WORD2VEC_PRETRAINED, build_language_model, pack, pretrain,
                                   save_marker, save_pretrained)
from reprotext.tokenizer import META_FILE, TokenArray, Tokenizer
from reprotext.tracking import best_effort, stage_run
from reprotext.training import seed_everything

TRAIN_SETS = ("source/train", "target/train", "unlabeled")  # unlabeled only when tokenize wrote it
DEV_SETS = ("source/dev", "target/dev")


def main() -> None:
    p = stage.parser(__doc__)
    p.add_argument("--tokenizer", required=True)
    p.add_argument("--tokens", required=True)
    p.add_argument("--embeddings", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--metrics", required=True)
    args = p.parse_args()
    cfg = load_section("pretrain", PretrainConfig, args.params)
    train_cfg = load_section("train", TrainConfig, args.params)  # dvc.yaml: train.model and the encoders' options
    model, options = train_cfg.model, train_cfg.encoder_options()
    with stage_run("pretrain", cfg.model_dump(mode="json")) as mlflow:
        mlflow.log_params({"train.model": model, "pretrain.objective": OBJECTIVES[model]})
        tok = Tokenizer.load(args.tokenizer)
        if model in WORD2VEC_PRETRAINED:
            with atomic_dir(args.out) as tmp:
                save_marker(tmp, model, tok.sha256)
            write_json(args.metrics, {"objective": OBJECTIVES[model], "model": model})
            return
        tokens = Path(args.tokens)
        sets = [n for n in TRAIN_SETS if n != "unlabeled" or (tokens / n / META_FILE).is_file()]
        train = pack([TokenArray.load(tokens / n, tok.sha256) for n in sets], cfg.seq_len)
        dev = pack([TokenArray.load(tokens / n, tok.sha256) for n in DEV_SETS], cfg.seq_len, cfg.dev_tokens)
        vectors = embeddings.load(args.embeddings, tok.sha256)
        seed_everything(cfg.seed)  # the LM head's initial weights repeat for a seed
        lm = build_language_model(model, options, vectors, cfg)

        def log_epoch(row: dict[str, float]) -> None:
            mlflow.log_metrics({k: v for k, v in row.items() if k != "epoch"}, step=int(row["epoch"]))

        result = pretrain(lm, train, dev, cfg, log_epoch)
        final = result.history[-1]
        # Timings vary between runs: MLflow only, never the saved files.
        history = [{k: v for k, v in row.items() if not k.startswith("throughput/")} for row in result.history]
        info = {"config": cfg.model_dump(mode="json"), "training_sets": sets, "history": history,
                "unigram_perplexity": result.unigram_perplexity}
        with atomic_dir(args.out) as tmp:
            save_pretrained(tmp, lm, model, options, tok.sha256, info)
        write_json(args.metrics, {
            "objective": lm.objective, "model": model, "train_tokens": result.train_tokens, "steps": result.steps,
            "dev": {"perplexity": final["dev/perplexity"], "unigram_perplexity": result.unigram_perplexity,
                    "targets": result.dev_targets},
            "dev_perplexity_by_epoch": {str(int(r["epoch"])): r["dev/perplexity"] for r in result.history}})
        with best_effort(f"the encoder was saved to {args.out}"):
            mlflow.log_metrics({"dev/unigram_perplexity": result.unigram_perplexity, "fit_seconds": result.seconds,
                                "throughput/tokens_per_second": result.tokens_per_second})
        print(f"{model} {lm.objective}: dev perplexity "
              + " -> ".join(f"{r['dev/perplexity']:.1f}" for r in result.history)
              + f" (unigram {result.unigram_perplexity:.1f}); {result.tokens_per_second:.0f} tokens/s, "
              f"{result.seconds:.0f}s")


if __name__ == "__main__":
    stage.run(main)
