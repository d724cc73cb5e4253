"""Access to the golden cases in `deeplab_dpc/testdata/golden/` and their tolerances.

Each case holds the original release's outputs for the recipe weights
(`recipe_checkpoint`); see `testdata/golden/README.md`.
"""

import json
import os

import numpy as np

from deeplab_dpc import options as options_lib
from deeplab_dpc.testing import recipe_checkpoint

GOLDEN_DIR = os.path.join(os.path.dirname(os.path.dirname(__file__)), 'testdata', 'golden')
CASES = ('xception65_dpc_os16', 'mobilenetv2_dpc_os16')


def case_dir(case: str) -> str:
  return os.path.join(GOLDEN_DIR, case)


def outputs(case: str) -> dict[str, np.ndarray]:
  """The reference arrays of a case."""
  with np.load(os.path.join(case_dir(case), 'outputs.npz')) as data:
    return {k: data[k] for k in data.files}


def config(case: str) -> dict:
  with open(os.path.join(case_dir(case), 'config.json'), encoding='utf-8') as f:
    return json.load(f)


def model_options(case: str) -> options_lib.ModelOptions:
  """Our options for the configuration the original ran."""
  return options_from_original(config(case)['model_options'])


def options_from_original(original: dict) -> options_lib.ModelOptions:
  """Our options for a dict of the original's `ModelOptions` fields."""
  return options_lib.ModelOptions.create(
      num_classes=original['outputs_to_num_classes']['semantic'],
      model_variant=original['model_variant'],
      crop_size=original['crop_size'],
      output_stride=original['output_stride'],
      atrous_rates=original['atrous_rates'],
      decoder_output_stride=original['decoder_output_stride'],
      decoder_use_separable_conv=original['decoder_use_separable_conv'],
      dense_prediction_cell_config=original['dense_prediction_cell_config'],
      depth_multiplier=original['depth_multiplier'],
      fine_tune_batch_norm=False)


def write_checkpoint(case: str, directory: str) -> str:
  """Writes the case's recipe weights as a TF1 checkpoint; returns its prefix."""
  manifest = recipe_checkpoint.load_manifest(os.path.join(case_dir(case), 'manifest.json'))
  return recipe_checkpoint.write_tf1_checkpoint(
      recipe_checkpoint.recipe_weights(manifest), os.path.join(directory, 'model.ckpt'))


def manifest_names(case: str) -> list[str]:
  manifest = recipe_checkpoint.load_manifest(os.path.join(case_dir(case), 'manifest.json'))
  return [v['name'] for v in manifest]


def scale(reference: np.ndarray) -> float:
  """The README's scale of an array: max(1, max|ref|)."""
  return max(1.0, float(np.abs(reference).max()))


def check_features(name: str, ours, reference) -> float:
  """Asserts max|ours - ref| <= 1e-3 * scale; returns the relative error."""
  ours = np.asarray(ours)
  assert ours.shape == reference.shape, f'{name}: shape {ours.shape} != {reference.shape}'
  error = float(np.abs(ours - reference).max()) / scale(reference)
  assert error <= 1e-3, f'{name}: max error {error:.3g} x scale exceeds 1e-3'
  return error


def check_logits(name: str, ours, reference) -> float:
  """Also asserts mean|ours - ref| <= 1e-4 * scale."""
  error = check_features(name, ours, reference)
  mean_error = float(np.abs(np.asarray(ours) - reference).mean()) / scale(reference)
  assert mean_error <= 1e-4, f'{name}: mean error {mean_error:.3g} x scale exceeds 1e-4'
  return error


def check_predictions(ours, reference, logits_upsampled) -> float:
  """>= 99.9% agreement, and every disagreement a near-tie in the reference."""
  ours = np.asarray(ours)
  assert ours.shape == reference.shape
  differ = ours != reference
  agreement = 1.0 - differ.mean()
  assert agreement >= 0.999, f'predictions agree on {agreement:.4%} of pixels only'
  if differ.any():
    top2 = np.sort(logits_upsampled[differ], axis=-1)[:, -2:]
    gaps = top2[:, 1] - top2[:, 0]
    limit = 1e-3 * scale(logits_upsampled)
    assert (gaps < limit).all(), f'a flipped pixel is no near-tie (gap {gaps.max():.3g})'
  return float(agreement)
