"""Our training step against the original train.py's, on the golden training-step cases."""

import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from deeplab_dpc.testing import golden
from deeplab_dpc.testing import train_step_golden

FROZEN = os.path.join(golden.GOLDEN_DIR, 'train_step_mnv2_dpc_frozenbn')
BATCH_STATS = os.path.join(golden.GOLDEN_DIR, 'train_step_mnv2_dpc')
LEARNING_RATE = 0.01
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _reference(case_dir):
  with np.load(os.path.join(case_dir, 'outputs.npz')) as data:
    return {k: data[k] for k in data.files}


def _recorded(reference):
  return sorted(k for k in reference if k.startswith(('grad__', 'updated__', 'updated_step2__')))


def _loss_names():
  return [n + s for n in train_step_golden.LOSS_NAMES for s in ('', '_step2')]


def _max_grad(reference, key):
  """max|grad| of the variable an `updated*__` array belongs to (0 for moving statistics)."""
  grad = reference.get('grad__' + key.split('__', 1)[1])
  return 0.0 if grad is None else float(np.abs(grad).max())


def test_frozen_batch_norm_step_matches_to_float_rounding(tmp_path):
  # Through the CLI, as outside checks run it; the case's suggested tolerances.
  out = tmp_path / 'ours.npz'
  subprocess.run([sys.executable, '-m', 'deeplab_dpc.testing.train_step_golden', FROZEN,
                  f'--output_npz={out}'], check=True, cwd=REPO, capture_output=True)
  ours, reference = dict(np.load(out)), _reference(FROZEN)
  assert set(_recorded(reference)) <= set(ours)
  for name in _loss_names():
    np.testing.assert_allclose(ours[name], reference[name], rtol=1e-5, err_msg=name)
  np.testing.assert_allclose(ours['logits'], reference['logits'],
                             atol=1e-4 * np.abs(reference['logits']).max())
  for key in _recorded(reference):
    ref = reference[key]
    if key.startswith('grad__'):
      atol = 1e-4 * np.abs(ref).max()
    else:
      atol = 1e-6 * golden.scale(ref) + LEARNING_RATE * 1e-4 * _max_grad(reference, key)
    np.testing.assert_allclose(ours[key], ref, rtol=0, atol=atol, err_msg=key)
  for key in (k for k in reference if k.startswith('momentum')):
    np.testing.assert_allclose(ours[key], reference[key], rtol=0,
                               atol=1e-4 * np.abs(reference[key]).max(), err_msg=key)


def test_batch_statistics_step_matches_within_its_chaos():
  ours, reference = train_step_golden.run_case(BATCH_STATS), _reference(BATCH_STATS)
  assert set(_recorded(reference)) <= set(ours)
  for name in train_step_golden.LOSS_NAMES:
    np.testing.assert_allclose(ours[name], reference[name], rtol=1e-4, err_msg=name)
    # After one update the chaos has acted: a 1e-7 relative change of the input
    # images alone moves our step-2 loss by 1.8e-4 (testdata/golden/README.md).
    np.testing.assert_allclose(ours[name + '_step2'], reference[name + '_step2'], rtol=1e-3)
  np.testing.assert_allclose(ours['logits'], reference['logits'],
                             atol=5e-3 * np.abs(reference['logits']).max())
  for key in _recorded(reference):
    ref, got = reference[key].ravel().astype(np.float64), ours[key].ravel().astype(np.float64)
    if key.startswith('grad__'):
      cosine = got @ ref / (np.linalg.norm(got) * np.linalg.norm(ref))
      assert cosine >= 0.995, (key, cosine)
      assert abs(np.linalg.norm(got) / np.linalg.norm(ref) - 1) <= 0.03, key
    elif key.endswith(('moving_mean', 'moving_variance')):
      np.testing.assert_allclose(got, ref, rtol=0, atol=1e-4 * golden.scale(ref), err_msg=key)
    else:
      atol = 1e-6 * golden.scale(ref) + LEARNING_RATE * 0.5 * _max_grad(reference, key)
      np.testing.assert_allclose(got, ref, rtol=0, atol=atol, err_msg=key)


def test_a_case_folder_without_its_files_is_named(tmp_path):
  with pytest.raises(FileNotFoundError, match='config.json'):
    train_step_golden.run_case(str(tmp_path))


def test_a_recorded_variable_our_model_lacks_is_named(tmp_path):
  for name in ('config.json', 'manifest.json'):
    shutil.copy(os.path.join(FROZEN, name), tmp_path / name)
  reference = _reference(FROZEN)
  reference['grad__logits__semantic__no_such_weights'] = np.zeros(1, np.float32)
  np.savez(tmp_path / 'outputs.npz', **reference)
  with pytest.raises(ValueError, match='grad__logits/semantic/no_such_weights names no '
                                       'trainable variable'):
    train_step_golden.run_case(str(tmp_path))


def test_the_cli_without_output_npz_is_one_line():
  result = subprocess.run([sys.executable, '-m', 'deeplab_dpc.testing.train_step_golden',
                           FROZEN], cwd=REPO, capture_output=True, text=True, check=False)
  assert result.returncode == 2
  assert 'error: --output_npz is required' in result.stderr
  assert 'Traceback' not in result.stderr
