"""Tests of the PASCAL-Person-Part builder CLI."""

import os

from datasets import cli_testing
from deeplab_dpc.data import fixtures


def test_builds_with_pair_lists(tmp_path):
  raw = fixtures.write_person_part(str(tmp_path / 'ppp'), pair_lists=True)
  result = cli_testing.run_cli('build_person_part_data.py', f'--person_part_root={raw["root"]}',
                               f'--output_dir={tmp_path / "out"}', '--num_shards=1')
  assert result.returncode == 0, result.stderr[-2000:]
  assert sorted(os.listdir(tmp_path / 'out')) == ['train-00000-of-00001.tfrecord',
                                                 'val-00000-of-00001.tfrecord']
  assert 'train: 2 examples' in result.stdout
