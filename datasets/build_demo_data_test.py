"""Tests of the demo builder CLI: the contract other checks rely on."""

import glob
import os

from datasets import cli_testing
from deeplab_dpc.data import tfrecord


def test_output_dir_is_the_only_flag_needed(tmp_path):
  result = cli_testing.run_cli('build_demo_data.py', f'--output_dir={tmp_path}')
  assert result.returncode == 0, result.stderr[-2000:]
  train = sorted(glob.glob(os.path.join(tmp_path, 'train-*.tfrecord')))
  val = sorted(glob.glob(os.path.join(tmp_path, 'val-*.tfrecord')))
  assert [os.path.basename(p) for p in val] == [
      f'val-{i:05d}-of-00004.tfrecord' for i in range(4)]
  assert len(train) == 4
  examples = list(tfrecord.read_examples(val[0]))
  assert len(examples) == 20
  for example in examples:
    assert example['image'].shape[0] <= 161 and example['image'].shape[1] <= 161
  assert not [n for n in os.listdir(tmp_path) if n.startswith('.')]


def test_bad_flag_value_exits_2_with_one_line(tmp_path):
  result = cli_testing.run_cli('build_demo_data.py', f'--output_dir={tmp_path}',
                               '--splits=test')
  assert result.returncode == 2
  assert "error: Unknown split 'test' for dataset 'demo'" in cli_testing.last_stderr_line(result)
  assert 'Traceback' not in result.stderr
