"""prepare: the source, target and unlabeled datasets in, normalised, validated, deduplicated."""
from reprotext import stage
from reprotext.config import PrepareConfig, load_section
from reprotext.data.prepare import prepare_all
from reprotext.data.store import write_frame
from reprotext.io import atomic_file, write_json
from reprotext.tracking import stage_run


def main() -> None:
    p = stage.parser(__doc__)
    p.add_argument("--source-out", required=True)
    p.add_argument("--target-out", required=True)
    p.add_argument("--unlabeled-out", required=True, help="always written; no rows when prepare.unlabeled is null")
    p.add_argument("--metrics", required=True)
    args = p.parse_args()
    cfg = load_section("prepare", PrepareConfig, args.params)
    with stage_run("prepare", cfg.model_dump()) as mlflow:
        prepared = prepare_all(cfg)
        # Write only once every dataset is good: a bad target leaves no new source.
        for role, out in (("source", args.source_out), ("target", args.target_out), ("unlabeled", args.unlabeled_out)):
            with atomic_file(out) as tmp:
                write_frame(prepared.frames[role], tmp, prepared.meta[role])
        write_json(args.metrics, prepared.metrics)
        mlflow.log_metrics({f"{role}/{k}": v for role, m in prepared.metrics.items() for k, v in m.items()})


if __name__ == "__main__":
    stage.run(main)
