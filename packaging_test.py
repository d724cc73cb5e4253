"""The pip package: its wheel installs outside the checkout and the deeplab-* commands run.

Marked `packaging` (the slowest kind of test here: about a minute and a half on two
cores; `pytest -m "not packaging"` leaves it out). It builds the wheel from a copy of
what pyproject.toml packages, installs it with --no-deps into a fresh venv under
tmp_path and runs the console scripts from a folder outside the checkout, as a user
who ran `pip install ".[cpu]"` would.

The fresh venv reaches the dependencies (TensorFlow, Keras, ...) through a .pth file
naming this environment's site-packages, added after the wheel is installed, rather
than by installing them again: that would take minutes and need the package index.
A .pth line only extends sys.path (it does not run the .pth files there), so this
environment's editable install of the checkout stays out of sight, and the venv's own
site-packages comes first: `deeplab_dpc` is the wheel's copy, which the test checks.
"""

import os
import shutil
import subprocess
import sys
import sysconfig

import numpy as np
from PIL import Image
import pytest

from deeplab_dpc import checkpoints
from deeplab_dpc import model as model_lib
from deeplab_dpc import options as options_lib

ROOT = os.path.dirname(os.path.abspath(__file__))
_TINY = {'model_variant': 'mobilenet_v2', 'depth_multiplier': 0.25, 'output_stride': 16}
_COMMANDS = ('deeplab-train', 'deeplab-eval', 'deeplab-vis', 'deeplab-export', 'deeplab-search',
             'deeplab-segment', 'deeplab-demo', 'deeplab-build-data',
             'deeplab-pretrain-demo-backbone')

pytestmark = pytest.mark.packaging


def _check(command, **kwargs):
  result = subprocess.run(command, capture_output=True, text=True, check=False, timeout=300,
                          **kwargs)
  assert result.returncode == 0, (command, result.stdout[-2000:], result.stderr[-3000:])
  return result


def _build_wheel(tmp_path):
  """Builds the wheel from a copy of the packaged files; returns its path."""
  src = tmp_path / 'src'
  src.mkdir()
  for name in ('pyproject.toml', 'README.md'):
    shutil.copy(os.path.join(ROOT, name), src)
  shutil.copytree(os.path.join(ROOT, 'deeplab_dpc'), src / 'deeplab_dpc',
                  ignore=shutil.ignore_patterns('__pycache__', 'testdata'))
  # This environment's setuptools: an isolated build would fetch one from the index.
  _check([sys.executable, '-m', 'pip', 'wheel', '--no-deps', '--no-build-isolation',
          '--no-index', '--quiet', str(src), '-w', str(tmp_path / 'wheel')])
  (wheel,) = (tmp_path / 'wheel').iterdir()
  return wheel


def _install(tmp_path, wheel):
  """A fresh venv holding only the wheel; returns its environment for subprocesses."""
  venv = tmp_path / 'venv'
  _check([sys.executable, '-m', 'venv', '--without-pip', str(venv)])
  python = str(venv / 'bin' / 'python')
  _check([sys.executable, '-m', 'pip', '--python', python, 'install', '--no-deps',
          '--no-index', '--quiet', str(wheel)])
  site = _check([python, '-c', 'import sysconfig; print(sysconfig.get_paths()["purelib"])'])
  with open(os.path.join(site.stdout.strip(), 'deeplab_dpc_test_deps.pth'), 'w') as f:
    f.write(sysconfig.get_paths()['purelib'] + '\n')
  env = {k: v for k, v in os.environ.items() if k not in ('PYTHONPATH', 'VIRTUAL_ENV')}
  env.update(PATH=f'{venv / "bin"}{os.pathsep}{env.get("PATH", "")}', TF_CPP_MIN_LOG_LEVEL='2')
  return python, env


def _tiny_checkpoint(prefix):
  options = options_lib.ModelOptions.create(num_classes=3, crop_size=(33, 33), **_TINY)
  return checkpoints.save_checkpoint(model_lib.build_model(options), prefix)


def test_wheel_installs_and_its_commands_run_outside_the_checkout(tmp_path):
  python, env = _install(tmp_path, _build_wheel(tmp_path))
  work = tmp_path / 'work'
  work.mkdir()
  run = dict(cwd=str(work), env=env)

  where = _check([python, '-c', 'import deeplab_dpc.tools; print(deeplab_dpc.tools.__file__)'],
                 **run)
  assert where.stdout.strip().startswith(str(tmp_path / 'venv')), where.stdout
  # Every command at once: each spends its seconds importing TensorFlow.
  helps = {name: subprocess.Popen([name, '--help'], stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True, **run)
           for name in _COMMANDS}
  helpfull = _check(['deeplab-train', '--helpfull'], **run).stdout
  for flag in ('dataset_dir', 'model_variant', 'train_logdir', 'dense_prediction_cell_json'):
    assert f'  --{flag}:' in helpfull, flag
  for name, process in helps.items():
    out, err = process.communicate(timeout=300)
    assert process.returncode == 0, (name, err[-2000:])
    assert '--' in out, name

  checkpoint = _tiny_checkpoint(str(tmp_path / 'ckpt' / 'ckpt'))
  export = _check(['deeplab-export', f'--checkpoint_path={checkpoint}', '--export_path=export',
                   '--crop_size=33,33', '--num_classes=3',
                   *[f'--{k}={v}' for k, v in _TINY.items()]], **run)
  assert 'SavedModel written to' in export.stdout
  Image.fromarray(np.random.default_rng(0).integers(0, 256, (20, 30, 3), np.uint8)).save(
      work / 'picture.png')
  segment = _check(['deeplab-segment', '--saved_model=export', '--image=picture.png',
                    '--output_dir=segmented'], **run)
  assert 'wrote ' in segment.stdout
  written = sorted(os.listdir(work / 'segmented'))
  assert written and all(name.endswith('.png') for name in written), written
  with Image.open(work / 'segmented' / written[0]) as picture:
    assert picture.size == (30, 20)
