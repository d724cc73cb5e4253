"""Tests of the PASCAL VOC 2012 builder CLI."""

import os

from datasets import cli_testing
from deeplab_dpc.data import fixtures


def test_missing_image_exits_2_naming_it(tmp_path):
  raw = fixtures.write_voc(str(tmp_path / 'VOC2012'))
  os.remove(os.path.join(raw['root'], 'JPEGImages', '2007_000003.jpg'))
  result = cli_testing.run_cli('build_voc2012_data.py', f'--voc_root={raw["root"]}',
                               f'--output_dir={tmp_path / "out"}', '--splits=train,val')
  assert result.returncode == 2
  line = cli_testing.last_stderr_line(result)
  assert '2007_000003.jpg (listed in' in line and 'val.txt' in line
  assert 'Traceback' not in result.stderr
  # train was complete and written; val left nothing behind.
  assert sorted(os.listdir(tmp_path / 'out')) == [
      f'train-{i:05d}-of-00004.tfrecord' for i in range(4)]
