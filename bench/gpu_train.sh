#!/usr/bin/env bash
# One short run of the train stage on a GPU in bf16, and the same run on the CPU, for the speed-up.
#
# Needs the embed stage's outputs in the working tree (data/split/source, data/tokens/source,
# models/tokenizer, models/embeddings: ~46 MB for the default data; carry them to a GPU machine)
# and a Python with CUDA torch + this project's dependencies ($PYTHON, default .venv/bin/python,
# else python3). Runs, each for at most STEP_LIMIT seconds (default 100):
#   bag         (the default config), EPOCHS epochs (default 3)   on gpu bf16-mixed, then cpu 32-true
#   transformer (max_len 256, 2 layers), 1 epoch                   on gpu bf16-mixed, then cpu 32-true
# and writes $OUT/gpu_train.json (OUT defaults to bench/results). The whole script stays under
# 5 minutes on one H100 with 16 CPU cores. The dvc.lock and models/ of the tree are not touched:
# every run writes to a scratch directory with its own params file and MLflow store.
set -euo pipefail
cd "$(dirname "$0")/.."
EPOCHS=${EPOCHS:-3}
STEP_LIMIT=${STEP_LIMIT:-100}
OUT_DIR=${OUT:-bench/results}
if [[ -z "${PYTHON:-}" ]]; then
  if [[ -x .venv/bin/python ]]; then PYTHON=.venv/bin/python; else PYTHON=python3; fi
fi
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
for need in data/split/source/train.parquet data/tokens/source/train models/tokenizer/spm.model models/embeddings/vectors.npy; do
  [[ -e $need ]] || { echo "error: $need missing; run \`dvc repro embed\` first (or carry its outputs here)" >&2; exit 2; }
done
"$PYTHON" -c "import torch, lightning, mlflow, sentencepiece, pandas; assert torch.cuda.is_available(), 'no CUDA device'" \
  || { echo "error: $PYTHON lacks CUDA torch or a dependency of reprotext (see pyproject.toml)" >&2; exit 2; }
mkdir -p "$OUT_DIR"
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
export MLFLOW_TRACKING_URI="sqlite:///$scratch/mlflow.db"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader > "$scratch/gpu.txt" || true

run() {  # run NAME MODEL ACCELERATOR PRECISION EPOCHS: one train-stage execution, its log and wall time
  local name=$1 model=$2 accelerator=$3 precision=$4 epochs=$5 dir="$scratch/$1"
  mkdir -p "$dir"
  "$PYTHON" - "$dir/params.yaml" "$model" "$accelerator" "$precision" "$epochs" <<'PY'
import sys, yaml
path, model, accelerator, precision, epochs = sys.argv[1:]
params = yaml.safe_load(open("params.yaml"))
train = params["train"]
train.update(model=model, accelerator=accelerator, precision=precision, max_epochs=int(epochs), patience=int(epochs),
             deterministic=True if accelerator == "cpu" else "warn")  # some CUDA kernels have no deterministic twin
if model == "transformer":
    train["max_len"] = 256
yaml.safe_dump(params, open(path, "w"), sort_keys=False)
PY
  date +%s.%N > "$dir/wall.txt"
  timeout "$STEP_LIMIT" "$PYTHON" -m stages.train --params "$dir/params.yaml" --splits data/split/source \
    --tokenizer models/tokenizer --tokens data/tokens/source --embeddings models/embeddings --out "$dir/model" \
    --history "$dir/history.csv" --metrics "$dir/metrics.json" --resume-dir "$dir/resume" > "$dir/log.txt" 2>&1 \
    || echo "warning: $name exited with $? (timeout ${STEP_LIMIT}s?); see its log below" >&2
  date +%s.%N >> "$dir/wall.txt"
  tail -n 3 "$dir/log.txt"
}

run bag-gpu-bf16 bag gpu bf16-mixed "$EPOCHS"
run bag-cpu-fp32 bag cpu 32-true "$EPOCHS"
run transformer-gpu-bf16 transformer gpu bf16-mixed 1
run transformer-cpu-fp32 transformer cpu 32-true 1

"$PYTHON" - "$scratch" "$OUT_DIR/gpu_train.json" <<'PY'
import json, re, sys
from pathlib import Path
scratch, out = Path(sys.argv[1]), Path(sys.argv[2])
runs = {}
for d in sorted(p for p in scratch.iterdir() if p.is_dir()):
    log = (d / "log.txt").read_text(errors="replace")
    fit = re.search(r"best epoch (\d+) of (\d+) .* in ([\d.]+)s", log)  # the fit's own wall time, from fit()'s log
    metrics = json.loads((d / "metrics.json").read_text()) if (d / "metrics.json").is_file() else {}
    start, end = map(float, (d / "wall.txt").read_text().split())
    runs[d.name] = {"stage_seconds": round(end - start, 2), "fit_seconds": float(fit[3]) if fit else None,
                    "epochs": int(fit[2]) if fit else None, "dev_accuracy": metrics.get("dev", {}).get("accuracy")}
speedup = {}
for model in ("bag", "transformer"):
    gpu, cpu = runs.get(f"{model}-gpu-bf16", {}), runs.get(f"{model}-cpu-fp32", {})
    if gpu.get("fit_seconds") and cpu.get("fit_seconds"):
        speedup[model] = round(cpu["fit_seconds"] / gpu["fit_seconds"], 2)
gpu = (scratch / "gpu.txt").read_text().strip() if (scratch / "gpu.txt").is_file() else "unknown"
result = {"gpu": gpu, "runs": runs, "fit_speedup_gpu_bf16_over_cpu_fp32": speedup}
out.write_text(json.dumps(result, indent=2) + "\n")
print(json.dumps(result, indent=2))
PY
