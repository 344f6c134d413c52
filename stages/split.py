"""split: seeded train/dev/test of each prepared dataset, no text in two splits, and the data report."""
from pathlib import Path

from reprotext import stage
from reprotext.config import SplitConfig, load_section
from reprotext.data.report import summarize_profiles, write_report
from reprotext.data.split_file import split_file
from reprotext.data.store import read_meta
from reprotext.errors import DataError
from reprotext.io import atomic_dir, sha256_file, write_json
from reprotext.tracking import stage_run

ROLES = ("source", "target")


def main() -> None:
    p = stage.parser(__doc__)
    p.add_argument("--prepared", required=True, help="directory with source.parquet and target.parquet")
    p.add_argument("--out", required=True, help="directory to write <role>/<split>.parquet into")
    p.add_argument("--report", required=True, help="directory to write data.md and the plots into")
    p.add_argument("--metrics", required=True)
    args = p.parse_args()
    cfg = load_section("split", SplitConfig, args.params)
    paths = {role: Path(args.prepared) / f"{role}.parquet" for role in ROLES}
    for path in paths.values():
        if not path.is_file():
            raise DataError(f"{path}: prepared data not found; run `dvc repro prepare` first")
    with stage_run("split", cfg.model_dump()) as mlflow:
        summaries = []
        with atomic_dir(args.out) as tmp, atomic_dir(args.report) as report:
            for role, path in paths.items():
                meta = {"stage": "split", "role": role, "params": cfg.model_dump(), "input_sha256": sha256_file(path)}
                (tmp / role).mkdir()
                plan, profiles = split_file(path, cfg, tmp / role, meta)
                summaries.append(summarize_profiles(role, profiles, plan.leaks_removed, read_meta(path)))
            write_report(report, summaries, cfg)
        metrics = {s.role: s.metrics() for s in summaries}
        write_json(args.metrics, metrics)
        mlflow.log_metrics({f"{role}/{k}": v for role, m in metrics.items() for k, v in m.items()})
        mlflow.log_artifacts(args.report, artifact_path="data_report")


if __name__ == "__main__":
    stage.run(main)
