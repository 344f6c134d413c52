#!/usr/bin/env bash
# The pretrain stage on a GPU in bf16 against the CPU in fp32, for its speed-up (tokens/s of training).
#
# Needs the embed stage's outputs in the working tree (data/tokens, models/tokenizer, models/embeddings: ~50 MB
# for the default data; carry them to a GPU machine) and a Python with CUDA torch + this project's dependencies
# ($PYTHON, default .venv/bin/python, else python3). For MODELS (default "transformer rnn ffnn") it runs the
# stage with train.model set to each, the default pretrain params but MAX_TOKENS training tokens (default 400000),
# each for at most STEP_LIMIT seconds (default 150):
#   <model>-gpu-bf16       accelerator gpu, precision bf16-mixed, the default batch (16 x 128 pieces)
#   <model>-gpu-bf16-b128  the same with 128 sequences a step (what a GPU wants; fewer, larger steps)
#   <model>-cpu-fp32       accelerator cpu, precision 32-true, every core (threads 0)
# and writes $OUT/gpu_pretrain.json (OUT defaults to bench/results): tokens/s, dev perplexity per epoch and the
# speed-ups over the CPU. The dvc.lock and models/ of the tree are not touched: every run writes to a scratch
# directory with its own params file and MLflow store. Under 15 minutes on one H100 with 16 CPU cores.
set -euo pipefail
cd "$(dirname "$0")/.."
MODELS=${MODELS:-"transformer rnn ffnn"}
MAX_TOKENS=${MAX_TOKENS:-400000}
STEP_LIMIT=${STEP_LIMIT:-150}
OUT_DIR=${OUT:-bench/results}
if [[ -z "${PYTHON:-}" ]]; then
  if [[ -x .venv/bin/python ]]; then PYTHON=.venv/bin/python; else PYTHON=python3; fi
fi
export PYTHONPATH="$PWD/src:$PWD${PYTHONPATH:+:$PYTHONPATH}"
for need in data/tokens/source/train data/tokens/target/dev models/tokenizer/spm.model models/embeddings/vectors.npy; do
  [[ -e $need ]] || { echo "error: $need missing; run \`dvc repro embed\` first (or carry its outputs here)" >&2; exit 2; }
done
"$PYTHON" -c "import torch, mlflow, sentencepiece, pandas; assert torch.cuda.is_available(), 'no CUDA device'" \
  || { echo "error: $PYTHON lacks CUDA torch or a dependency of reprotext (see pyproject.toml)" >&2; exit 2; }
mkdir -p "$OUT_DIR"
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
export MLFLOW_TRACKING_URI="sqlite:///$scratch/mlflow.db"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader > "$scratch/gpu.txt" || true

run() {  # run NAME MODEL ACCELERATOR PRECISION BATCH THREADS: one pretrain-stage execution, its log and wall time
  local name=$1 model=$2 accelerator=$3 precision=$4 batch=$5 threads=$6 dir="$scratch/$1"
  mkdir -p "$dir"
  "$PYTHON" - "$dir/params.yaml" "$model" "$accelerator" "$precision" "$batch" "$threads" "$MAX_TOKENS" <<'PY'
import sys, yaml
path, model, accelerator, precision, batch, threads, max_tokens = sys.argv[1:]
params = yaml.safe_load(open("params.yaml"))
params["train"]["model"] = model
params["train"]["max_len"] = min(params["train"]["max_len"], 512)  # the transformer's positions
params["pretrain"].update(accelerator=accelerator, precision=precision, batch_size=int(batch), threads=int(threads),
                          max_tokens=int(max_tokens))
yaml.safe_dump(params, open(path, "w"), sort_keys=False)
PY
  date +%s.%N > "$dir/wall.txt"
  timeout "$STEP_LIMIT" "$PYTHON" -m stages.pretrain --params "$dir/params.yaml" --tokenizer models/tokenizer \
    --tokens data/tokens --embeddings models/embeddings --out "$dir/pretrain" --metrics "$dir/metrics.json" \
    > "$dir/log.txt" 2>&1 || echo "warning: $name exited with $? (timeout ${STEP_LIMIT}s?); see its log below" >&2
  date +%s.%N >> "$dir/wall.txt"
  tail -n 2 "$dir/log.txt"
}

for model in $MODELS; do
  run "$model-gpu-bf16" "$model" gpu bf16-mixed 16 1
  run "$model-gpu-bf16-b128" "$model" gpu bf16-mixed 128 1
  run "$model-cpu-fp32" "$model" cpu 32-true 16 0
done

"$PYTHON" - "$scratch" "$OUT_DIR/gpu_pretrain.json" "$MODELS" <<'PY'
import json, re, sys
from pathlib import Path
scratch, out, models = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3].split()
runs = {}
for d in sorted(p for p in scratch.iterdir() if p.is_dir()):
    log = (d / "log.txt").read_text(errors="replace")
    done = re.search(r"unigram ([\d.]+)\); (\d+) tokens/s, (\d+)s", log)  # the stage's last line
    metrics = json.loads((d / "metrics.json").read_text()) if (d / "metrics.json").is_file() else {}
    start, end = map(float, (d / "wall.txt").read_text().split())
    runs[d.name] = {"stage_seconds": round(end - start, 2), "tokens_per_second": int(done[2]) if done else None,
                    "fit_seconds": int(done[3]) if done else None,
                    "dev_perplexity_by_epoch": metrics.get("dev_perplexity_by_epoch"),
                    "unigram_perplexity": metrics.get("dev", {}).get("unigram_perplexity")}
speedup = {}
for model in models:
    cpu = runs.get(f"{model}-cpu-fp32", {}).get("tokens_per_second")
    for variant in ("gpu-bf16", "gpu-bf16-b128"):
        gpu = runs.get(f"{model}-{variant}", {}).get("tokens_per_second")
        if gpu and cpu:
            speedup[f"{model}/{variant}"] = round(gpu / cpu, 2)
gpu = (scratch / "gpu.txt").read_text().strip() if (scratch / "gpu.txt").is_file() else "unknown"
result = {"gpu": gpu, "runs": runs, "tokens_per_second_speedup_over_cpu_fp32": speedup}
out.write_text(json.dumps(result, indent=2) + "\n")
print(json.dumps(result, indent=2))
PY
