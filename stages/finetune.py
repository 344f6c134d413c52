"""finetune: the trained encoder under a new head, fine-tuned on the target task."""
from pathlib import Path

from reprotext import stage
from reprotext.config import FinetuneConfig, load_section
from reprotext.io import atomic_dir, write_json
from reprotext.models import load_model, save_model
from reprotext.tokenizer import Tokenizer
from reprotext.tracking import stage_run
from reprotext.training import FitSettings, fit, seed_everything
from reprotext.training.data import load_task
from reprotext.training.history import save_history
from reprotext.transfer import swap_head


def main() -> None:
    p = stage.parser(__doc__)
    p.add_argument("--splits", required=True)
    p.add_argument("--tokenizer", required=True)
    p.add_argument("--tokens", required=True)
    p.add_argument("--pretrained", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--history", required=True)
    p.add_argument("--metrics", required=True)
    args = p.parse_args()
    cfg = load_section("finetune", FinetuneConfig, args.params)
    with stage_run("finetune", cfg.model_dump()) as mlflow:
        tok = Tokenizer.load(args.tokenizer)
        pretrained, _ = load_model(args.pretrained, tok.sha256)
        train_ds, dev_ds, labels = load_task(Path(args.splits), Path(args.tokens), tok.sha256, pretrained.config.max_len)
        seed_everything(cfg.seed)  # the new weights (head, random embeddings) repeat for a seed
        model = swap_head(pretrained, labels, cfg.dropout)
        result = fit(model, train_ds, dev_ds, FitSettings(cfg.lr, cfg.weight_decay, cfg.batch_size, cfg.max_epochs,
                                                          cfg.patience, cfg.seed), mlflow)
        metrics = {"best_epoch": result.best_epoch, "epochs_run": len(result.history),
                   "dev": {"loss": result.best["dev/loss"], "accuracy": result.best["dev/accuracy"]}}
        with atomic_dir(args.out) as tmp:
            save_model(model, tmp, {"best_epoch": result.best_epoch, "finetune_config": cfg.model_dump(),
                                    "pretrained_from": str(args.pretrained)})
            save_history(result.history, Path(args.history), tmp / "history.png", result.best_epoch,
                         f"finetune: {model.config.model} encoder, new head on the target task")
        write_json(args.metrics, metrics)
        mlflow.log_metrics({"best_epoch": result.best_epoch, "best/dev/loss": result.best["dev/loss"],
                            "best/dev/accuracy": result.best["dev/accuracy"], "fit_seconds": result.seconds})
        mlflow.log_artifact(str(Path(args.out) / "history.png"))
        mlflow.log_artifact(args.history)


if __name__ == "__main__":
    stage.run(main)
