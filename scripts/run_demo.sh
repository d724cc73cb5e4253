#!/usr/bin/env bash
# The README's main command: on a fresh machine, creates the environment (.venv) and runs
# the whole mission on the synthetic demo set (demo.py, deeplab_dpc/demo_pipeline.py):
# build TFRecords -> train the backbone -> cache features -> search DPC cells -> re-rank
# -> train the winner -> train a random cell alike and evaluate both -> export a
# SavedModel -> segment a demo image. About 8 minutes on 2 CPU cores; it ends by printing
# where every artefact is and the TensorBoard command.
#   bash scripts/run_demo.sh [OUTPUT_DIR] [demo.py flags, e.g. --reduced --seed=1]
# Running it again with the same OUTPUT_DIR (default runs/demo) reuses finished stages.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
out="${1:-runs/demo}"
shift || true
exec python demo.py --output_dir="$out" "$@"
