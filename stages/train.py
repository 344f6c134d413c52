"""train: the source-task classifier on BPE ids (encoder chosen by train.model), early-stopped on a dev metric.

With ``train.refit`` (the default) the epochs early stopping chose are then run again on train + dev by a
fresh model of the same seed, and that model is saved: the choice is made on dev, and the model learns from
every labelled document (on 20NG dev, a linear SVM on all of train beat the same on 8/9 of it by 0.5 points).
The metrics' dev scores are the first fit's, which never saw dev.
"""
import contextlib
from dataclasses import replace
from pathlib import Path

import numpy as np
from lightning.pytorch.utilities.rank_zero import rank_zero_only
from torch import nn

from reprotext import embeddings, stage
from reprotext.config import TrainConfig, load_section
from reprotext.errors import ConfigError
from reprotext.io import atomic_dir, write_json
from reprotext.models import Classifier, ModelConfig, encoder_statistics, load_statistics, save_model
from reprotext.pretraining import init_from_pretrained
from reprotext.tokenizer import TokenArray, Tokenizer
from reprotext.tracking import best_effort, stage_run
from reprotext.training import FitSettings, fit, seed_everything
from reprotext.training.data import TokenDataset, id_batches, load_task
from reprotext.training.history import save_history


def build(cfg: TrainConfig, tok: Tokenizer, vectors, train_ds: TokenDataset, labels: list[str],
          pretrained: str | None) -> Classifier:
    """The classifier ``cfg`` describes, its initial weights seeded, its statistics from ``train_ds``."""
    seed_everything(cfg.seed)  # the new weights (head, random embeddings) repeat for a seed
    # A bag's word starts, IDF and counted n-gram table come from the tokenizer and the training documents only
    # (with nb_weights, their labels too).
    options, stats = encoder_statistics(cfg.model, cfg.encoder_options(), tok.pieces(), id_batches(train_ds),
                                        train_ds.labels, len(labels))
    config = ModelConfig(model=cfg.model, vocab_size=tok.vocab_size, embedding_dim=vectors.shape[1],
                         labels=tuple(labels), hidden_dim=cfg.hidden_dim, dropout=cfg.dropout, max_len=cfg.max_len,
                         tokenizer_sha256=tok.sha256, dropconnect=cfg.dropconnect, batch_norm=cfg.batch_norm,
                         encoder=options)
    model = Classifier(config, vectors if cfg.embeddings == "pretrained" else None, cfg.freeze_embeddings)
    if cfg.init == "lm":  # the pretrained LM encoder's weights (for bag and cnn: the word2vec vectors above)
        if not pretrained:
            raise ConfigError("train.init lm needs the pretrain stage's output: pass --pretrained models/pretrain")
        init_from_pretrained(model, pretrained, tok.sha256, cfg.embeddings == "pretrained")
    load_statistics(model, stats)
    return model


def main() -> None:
    p = stage.parser(__doc__)
    p.add_argument("--splits", required=True)
    p.add_argument("--tokenizer", required=True)
    p.add_argument("--tokens", required=True)
    p.add_argument("--embeddings", required=True)
    p.add_argument("--pretrained", help="the pretrain stage's output, read when train.init is lm")
    p.add_argument("--out", required=True)
    p.add_argument("--history", required=True)
    p.add_argument("--metrics", required=True)
    p.add_argument("--resume-dir", required=True, help="training state kept between epochs (not a DVC out)")
    args = p.parse_args()
    cfg = load_section("train", TrainConfig, args.params)
    # Under DDP Lightning re-runs this script once per extra process; only rank 0 tracks and writes.
    lead = rank_zero_only.rank == 0
    with stage_run("train", cfg.model_dump(mode="json")) if lead else contextlib.nullcontext() as mlflow:
        tok = Tokenizer.load(args.tokenizer)
        train_ds, dev_ds, labels = load_task(Path(args.splits), Path(args.tokens), tok.sha256, cfg.max_len)
        vectors = embeddings.load(args.embeddings, tok.sha256)
        model = build(cfg, tok, vectors, train_ds, labels, args.pretrained)
        result = fit(model, train_ds, dev_ds, FitSettings.from_config(cfg), mlflow, Path(args.resume_dir))
        refit = None
        if cfg.refit:  # the epochs are chosen; the saved model learns from dev's documents too
            both = TokenDataset(TokenArray.concat([train_ds.tokens, dev_ds.tokens]),
                                np.concatenate([train_ds.labels, dev_ds.labels]), cfg.max_len)
            model = build(cfg, tok, vectors, both, labels, args.pretrained)
            settings = replace(FitSettings.from_config(cfg), max_epochs=result.best_epoch + 1, keep="last")
            refit = fit(model, both, dev_ds, settings, None, Path(f"{args.resume_dir}-refit"))
        if not lead:
            return
        n_params = sum(p.numel() for p in model.parameters())
        tables = [m.weight for m in model.modules() if isinstance(m, nn.Embedding)]  # every member's, in an ensemble
        metrics = {"best_epoch": result.best_epoch, "epochs_run": len(result.history), "steps": result.steps,
                   "stopped_early": result.stopped_early,
                   "parameters": n_params, "parameters_without_embeddings": n_params - sum(t.numel() for t in tables),
                   "dev": {"loss": result.best["dev/loss"], "accuracy": result.best["dev/accuracy"]},
                   "refit": refit and {"epochs": len(refit.history), "documents": len(train_ds) + len(dev_ds),
                                       "steps": refit.steps}}
        with atomic_dir(args.out) as tmp:
            save_model(model, tmp, {"best_epoch": result.best_epoch, "refit_on_train_and_dev": cfg.refit,
                                    "train_config": cfg.model_dump(mode="json")})
            save_history(result.history, Path(args.history), tmp / "history.png", result.best_epoch,
                         f"train: {cfg.model} on the source task")
        write_json(args.metrics, metrics)
        with best_effort(f"the model was saved to {args.out}"):  # a tracking server that died must not cost the model
            mlflow.log_metrics({"best_epoch": result.best_epoch, "best/dev/loss": result.best["dev/loss"],
                                "best/dev/accuracy": result.best["dev/accuracy"], "fit_seconds": result.seconds,
                                "resumed_after_epochs": result.resumed_after,
                                **({"refit/epochs": len(refit.history), "refit/fit_seconds": refit.seconds}
                                   if refit else {})})
            mlflow.log_artifact(str(Path(args.out) / "history.png"))
            mlflow.log_artifact(args.history)


if __name__ == "__main__":
    stage.run(main)
