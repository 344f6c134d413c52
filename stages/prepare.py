"""prepare: the source, target and unlabeled datasets in, normalised, validated, deduplicated."""
from contextlib import ExitStack

from reprotext import stage
from reprotext.config import PrepareConfig, load_section
from reprotext.data.prepare import prepare_all
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
        # Every dataset goes to a temporary file, all moved into place together once all are written:
        # a bad target leaves no new source.
        with ExitStack() as outs:
            tmps = {role: outs.enter_context(atomic_file(out)) for role, out in
                    (("source", args.source_out), ("target", args.target_out), ("unlabeled", args.unlabeled_out))}
            prepared = prepare_all(cfg, tmps)
        write_json(args.metrics, prepared.metrics)
        mlflow.log_metrics({f"{role}/{k}": v for role, m in prepared.metrics.items() for k, v in m.items()})


if __name__ == "__main__":
    stage.run(main)
