"""split: stratified, seeded train/dev/test of each prepared dataset; no text in two splits."""
from pathlib import Path

import pandas as pd

from reprotext import stage
from reprotext.config import SplitConfig, load_section
from reprotext.data import SPLITS, stratified_split
from reprotext.errors import DataError
from reprotext.io import atomic_dir, write_json
from reprotext.tracking import stage_run


def main() -> None:
    p = stage.parser(__doc__)
    p.add_argument("--prepared", required=True, help="directory with source.parquet and target.parquet")
    p.add_argument("--out", required=True, help="directory to write <role>/<split>.parquet into")
    p.add_argument("--metrics", required=True)
    args = p.parse_args()
    cfg = load_section("split", SplitConfig, args.params)
    with stage_run("split", cfg.model_dump()) as mlflow:
        parts, metrics = {}, {}
        for role in ("source", "target"):
            path = Path(args.prepared) / f"{role}.parquet"
            if not path.is_file():
                raise DataError(f"{path}: prepared data not found; run `dvc repro prepare` first")
            frame = pd.read_parquet(path)
            parts[role] = stratified_split(frame, cfg.train, cfg.dev, cfg.test, cfg.seed, where=str(path))
            metrics[role] = {name: len(part) for name, part in parts[role].items()}
        with atomic_dir(args.out) as tmp:
            for role, splits in parts.items():
                (tmp / role).mkdir()
                for name in SPLITS:
                    splits[name].to_parquet(tmp / role / f"{name}.parquet", index=False)
        write_json(args.metrics, metrics)
        mlflow.log_metrics({f"{role}/{k}_docs": v for role, m in metrics.items() for k, v in m.items()})


if __name__ == "__main__":
    stage.run(main)
