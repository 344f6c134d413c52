"""prepare: the source and target datasets in, normalised, validated, deduplicated."""
from reprotext import stage
from reprotext.config import PrepareConfig, load_section
from reprotext.data.prepare import prepare_dataset
from reprotext.io import atomic_file, write_json
from reprotext.tracking import stage_run


def main() -> None:
    p = stage.parser(__doc__)
    p.add_argument("--source-out", required=True)
    p.add_argument("--target-out", required=True)
    p.add_argument("--metrics", required=True)
    args = p.parse_args()
    cfg = load_section("prepare", PrepareConfig, args.params)
    with stage_run("prepare", cfg.model_dump()) as mlflow:
        frames, metrics = {}, {}
        for role, spec in (("source", cfg.source), ("target", cfg.target)):
            frames[role], stats = prepare_dataset(spec, cfg, where=role)
            metrics[role] = {**stats.as_dict(), "rows_kept": len(frames[role])}
        # Write only once both datasets are good: a bad target leaves no new source.
        for role, out in (("source", args.source_out), ("target", args.target_out)):
            with atomic_file(out) as tmp:
                frames[role].to_parquet(tmp, index=False)
        write_json(args.metrics, metrics)
        mlflow.log_metrics({f"{role}/{k}": v for role, m in metrics.items() for k, v in m.items()})


if __name__ == "__main__":
    stage.run(main)
