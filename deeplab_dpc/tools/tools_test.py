"""The tools' shared contract: --help lists every flag a tool accepts, and a missing
TensorFlow is one line naming the extra to install."""

import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
_ENV = {**os.environ, 'TF_CPP_MIN_LOG_LEVEL': '2'}


def _run(*args):
  return subprocess.run([sys.executable, *args], capture_output=True, text=True, cwd=ROOT,
                        env=_ENV, check=False, timeout=120)


# Flags of the shared modules (deeplab_dpc/flags.py, evaluation/eval_flags.py), which
# absl's --help leaves out unless the tool adopts them, next to one of the tool's own.
@pytest.mark.parametrize('script, expected', [
    ('train.py', ['dataset_dir', 'model_variant', 'output_stride',
                  'dense_prediction_cell_json', 'train_logdir']),
    ('export.py', ['dataset_dir', 'model_variant', 'output_stride',
                   'dense_prediction_cell_json', 'export_path']),
    ('eval.py', ['dataset_dir', 'model_variant', 'checkpoint_dir', 'eval_scales',
                 'dense_prediction_cell_json', 'eval_logdir']),
    ('vis.py', ['dataset_dir', 'model_variant', 'checkpoint_path', 'vis_logdir']),
    ('search.py', ['dataset_dir', 'model_variant', 'search_dir', 'max_trials']),
    ('datasets/build_demo_data.py', ['output_dir', 'num_shards']),
])
def test_help_lists_the_shared_flags_and_exits_0(script, expected):
  result = _run(script, '--help')
  assert result.returncode == 0, result.stderr[-2000:]
  for name in expected:
    assert f'  --{name}:' in result.stdout, (script, name)
  # The tool's docstring is the usage text, not the shim's.
  assert 'kept so that' not in result.stdout.lower()


def test_build_data_runs_the_named_builder_and_lists_them():
  listing = _run('-m', 'deeplab_dpc.tools.build_data', '--help')
  assert listing.returncode == 0
  for builder in ('voc2012', 'cityscapes', 'person_part', 'demo', 'custom'):
    assert f'  {builder} ' in listing.stdout
  unknown = _run('-m', 'deeplab_dpc.tools.build_data', 'coco')
  assert unknown.returncode == 2
  assert unknown.stderr.strip() == ("error: unknown builder 'coco'; choose one of voc2012, "
                                    'cityscapes, person_part, demo, custom')
  builder_help = _run('-m', 'deeplab_dpc.tools.build_data', 'custom', '--help')
  assert builder_help.returncode == 0, builder_help.stderr[-2000:]
  assert '  --semantic_segmentation_folder:' in builder_help.stdout


def test_missing_tensorflow_is_one_line_naming_the_extras():
  # None in sys.modules is how Python marks a module as absent.
  result = _run('-c', "import sys; sys.modules['tensorflow'] = None; "
                'from deeplab_dpc.tools import train')
  assert result.returncode == 2
  assert result.stderr.strip() == (
      'error: TensorFlow is not installed: pip install "deeplab-dpc[cpu]" '
      '(or "deeplab-dpc[gpu]" on a machine with an NVIDIA GPU)')
