"""The tools' shared contract: --help lists every flag a tool accepts, grouped, and a
missing TensorFlow is one line naming the extra to install."""

import os
import re
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


def _flag_names(text):
  return re.findall(r'^  --(?:\[no\])?(\w+):', text, flags=re.MULTILINE)


def _sections(text):
  """{heading: flag names} of a --help text; a heading is an unindented line ending in ':'."""
  sections, title = {}, None
  for line in text.splitlines():
    if re.fullmatch(r'\S.*:', line):
      title = line[:-1]
    names = _flag_names(line)
    if names:
      sections.setdefault(title, []).extend(names)
  return sections


# Each tool, and for a few of its flags the group --help lists them under.
@pytest.mark.parametrize('script, groups', [
    ('train.py', {'Model': ['model_variant', 'dense_prediction_cell_json'],
                  'Data': ['dataset_dir', 'min_scale_factor'],
                  'Training recipe': ['base_learning_rate', 'train_crop_size'],
                  'Initial checkpoint': ['tf_initial_checkpoint'],
                  'Checkpoints and logging': ['train_logdir', 'save_interval_secs'],
                  'Devices and speed': ['distribution', 'mixed_precision']}),
    ('eval.py', {'Model': ['output_stride'], 'Data': ['eval_split', 'dataset'],
                 'Checkpoints': ['checkpoint_dir', 'max_number_of_evaluations'],
                 'Inference': ['eval_scales', 'eval_crop_size'], 'Output': ['eval_logdir']}),
    ('export.py', {'Model': ['num_classes', 'decoder_output_stride'],
                   'Data': ['min_resize_value'], 'Inference': ['crop_size'],
                   'Checkpoint and SavedModel': ['checkpoint_path', 'export_path'],
                   'TFLite': ['quantization']}),
    ('search.py', {'Search': ['mode', 'search_dir', 'algorithm', 'prescreen'],
                   'Proxy task': ['proxy_training_number_of_steps'],
                   'Feature cache': ['cache_dir']}),
    ('segment.py', {'Flags': ['saved_model', 'image']}),
])
def test_help_groups_every_flag_the_tool_defines(script, groups):
  short = _run(script, '--help')
  assert short.returncode == 0, short.stderr[-2000:]
  sections = _sections(short.stdout)
  for title, names in groups.items():
    assert set(names) <= set(sections.get(title, [])), (script, title, sections.get(title))
  listed = _flag_names(short.stdout)
  assert len(listed) == len(set(listed)), 'a flag listed twice'
  # --helpfull lists flags by defining module; the project's are the tool's (absl's and
  # TensorFlow's own are not).
  full = _run(script, '--helpfull').stdout
  ours = [name for title, names in _sections(full).items()
          if title.startswith('deeplab_dpc') or title.endswith('.py') for name in names]
  assert ours
  assert set(ours) == set(listed), set(ours) ^ set(listed)


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
