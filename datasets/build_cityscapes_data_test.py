"""Tests of the Cityscapes builder CLI."""

import os

from datasets import cli_testing
from deeplab_dpc.data import fixtures


def test_builds_train_and_val(tmp_path):
  raw = fixtures.write_cityscapes(str(tmp_path / 'cityscapes'))
  out = tmp_path / 'tfrecord'
  result = cli_testing.run_cli('build_cityscapes_data.py', f'--cityscapes_root={raw["root"]}',
                               f'--output_dir={out}', '--num_shards=2')
  assert result.returncode == 0, result.stderr[-2000:]
  assert sorted(os.listdir(out)) == [
      'train_fine-00000-of-00002.tfrecord', 'train_fine-00001-of-00002.tfrecord',
      'val_fine-00000-of-00002.tfrecord', 'val_fine-00001-of-00002.tfrecord']
  assert 'train_fine: 2 examples' in result.stdout


def test_wrong_layout_exits_2(tmp_path):
  result = cli_testing.run_cli('build_cityscapes_data.py', f'--cityscapes_root={tmp_path}',
                               f'--output_dir={tmp_path / "out"}')
  assert result.returncode == 2
  assert 'does not have the Cityscapes layout' in cli_testing.last_stderr_line(result)
  assert 'Traceback' not in result.stderr
