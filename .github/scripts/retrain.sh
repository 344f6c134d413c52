#!/usr/bin/env bash
# Retrain and gate: the steps .github/workflows/retrain.yml runs, runnable by hand too.
#
#   BASELINE=origin/main .github/scripts/retrain.sh
#
# Environment (all optional):
#   BASELINE        git revision to compare with (default: HEAD~1)
#   GATE_METRIC     metric key or suffix to gate on (default: test/macro_f1)
#   GATE_TOLERANCE  allowed drop (default: 0.005)
#   REPORT          where to write the Markdown report (default: retrain-report.md)
#   PUSH            "true" to `dvc push` the outputs after a passing gate (default: false)
#   SET_PARAMS      space-separated overrides "train.lr=0.01 train.model=bag" applied before `dvc repro`
set -euo pipefail

# By hand after `make run`, nothing activated: the venv's dvc, reprotext and (for the stages) python come first.
if [ -x .venv/bin/dvc ]; then
  export PATH="$PWD/.venv/bin:$PATH"
fi

BASELINE=${BASELINE:-HEAD~1}
GATE_METRIC=${GATE_METRIC:-test/macro_f1}
GATE_TOLERANCE=${GATE_TOLERANCE:-0.005}
REPORT=${REPORT:-retrain-report.md}
PUSH=${PUSH:-false}
SET_PARAMS=${SET_PARAMS:-}

say() { printf '==> %s\n' "$*"; }

if [ -n "$(dvc remote list)" ]; then
  say "dvc pull (reusing cached outputs where the remote has them)"
  dvc pull --allow-missing dvc.yaml || say "dvc pull could not fetch everything; the missing stages will run"
else
  say "no DVC remote configured: skipping dvc pull"
fi

if [ -n "$SET_PARAMS" ]; then
  # `dvc exp run -S` edits params.yaml in place (comments kept) and reproduces.
  overrides=()
  for p in $SET_PARAMS; do overrides+=(-S "$p"); done
  say "dvc exp run ${overrides[*]}"
  dvc exp run "${overrides[@]}"
else
  say "dvc repro"
  dvc repro dvc.yaml
fi

say "report against $BASELINE -> $REPORT"
reprotext report --baseline "$BASELINE" --output "$REPORT" >/dev/null
cat "$REPORT"

say "gate: $GATE_METRIC, tolerance $GATE_TOLERANCE"
reprotext gate --baseline "$BASELINE" --metric "$GATE_METRIC" --tolerance "$GATE_TOLERANCE"

if [ "$PUSH" = "true" ]; then
  say "dvc push"
  dvc push dvc.yaml
fi
