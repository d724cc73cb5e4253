"""Tests of the PASCAL-Person-Part builder."""

import glob
import os

import numpy as np
import pytest

from deeplab_dpc.data import fixtures
from deeplab_dpc.data import person_part
from deeplab_dpc.data import tfrecord


@pytest.mark.parametrize('pair_lists', [False, True])
def test_build(tmp_path, pair_lists):
  raw = fixtures.write_person_part(str(tmp_path / 'ppp'), pair_lists=pair_lists)
  out = str(tmp_path / 'out')
  assert person_part.build(raw['root'], out, num_shards=2) == {'train': 2, 'val': 1}
  examples = [e for p in sorted(glob.glob(os.path.join(out, 'train-*')))
              for e in tfrecord.read_examples(p)]
  assert [e['image_name'] for e in examples] == ['2008_000003', '2008_000008']
  for example in examples:
    np.testing.assert_array_equal(example['label'][..., 0], raw['labels'][example['image_name']])
    assert example['image'].shape == (9, 11, 3)


def test_wrong_layout_and_missing_list(tmp_path):
  with pytest.raises(FileNotFoundError, match='PASCAL-Person-Part layout'):
    person_part.build(str(tmp_path), str(tmp_path / 'out'))
  raw = fixtures.write_person_part(str(tmp_path / 'ppp'))
  with pytest.raises(FileNotFoundError, match='No list for split .test.'):
    person_part.list_split(raw['root'], 'test')
  with pytest.raises(ValueError, match="Unknown split 'test'"):
    person_part.build(raw['root'], str(tmp_path / 'out'), ['test'])
