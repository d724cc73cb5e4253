#!/usr/bin/env bash
# The README's main command. Until the full demo pipeline lands (build data ->
# search -> train -> evaluate), it runs the original release's Xception-65 + DPC
# model on a bundled image: it writes the golden weights as an original-format
# TF1 checkpoint, imports it, exports a SavedModel and writes a coloured prediction.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
out="${1:-runs/demo}"
case="deeplab_dpc/testdata/golden/xception65_dpc_os16"
mkdir -p "$out"
echo "[1/3] writing the original-format checkpoint (golden weight recipe)"
python -m deeplab_dpc.testing.recipe_checkpoint "$case/manifest.json" "$out/original/model.ckpt"
echo "[2/3] importing it and exporting a SavedModel"
python export.py --checkpoint_path="$out/original/model.ckpt" --export_path="$out/saved_model" \
  --model_variant=xception_65 --output_stride=16 --crop_size=129,161 --num_classes=19 \
  --decoder_output_stride=4 \
  --dense_prediction_cell_json=deeplab_dpc/cells/dense_prediction_cell_branch5_top1_cityscapes.json
echo "[3/3] segmenting the bundled image"
python segment.py --saved_model="$out/saved_model" --image="$case/input.png" \
  --output_dir="$out/predictions" --colormap=cityscapes
echo
echo "SavedModel:  $out/saved_model   (saved_model_cli show --dir $out/saved_model --all)"
echo "Prediction:  $out/predictions/input_prediction.png"
