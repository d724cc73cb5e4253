"""Tests of the Cityscapes builder."""

import glob
import os

import numpy as np
import pytest
from PIL import Image

from deeplab_dpc.data import cityscapes
from deeplab_dpc.data import fixtures
from deeplab_dpc.data import tfrecord


def _examples(output_dir, split):
  return [e for p in sorted(glob.glob(os.path.join(output_dir, split + '-*')))
          for e in tfrecord.read_examples(p)]


def test_label_table_from_cityscapesscripts():
  table = cityscapes.label_id_to_train_id()
  assert table.shape == (256,)
  assert table[7] == 0 and table[8] == 1 and table[26] == 13 and table[33] == 18
  assert table[0] == 255 and table[6] == 255 and table[34] == 255
  assert sorted(set(table[:34]) - {255}) == list(range(19))


def test_build_maps_label_ids_and_keeps_train_ids(tmp_path):
  raw = fixtures.write_cityscapes(str(tmp_path / 'cityscapes'))
  out = str(tmp_path / 'out')
  written = cityscapes.build(raw['root'], out, ['train', 'val_fine'], num_shards=2)
  assert written == {'train_fine': 2, 'val_fine': 1}
  train = _examples(out, 'train_fine')
  assert [e['image_name'] for e in train] == ['aachen_000000_000010', 'bochum_000000_000011']
  table = cityscapes.label_id_to_train_id()
  for example, label_ids in zip(train, raw['train_label_ids']):
    np.testing.assert_array_equal(example['label'][..., 0], table[label_ids])
  np.testing.assert_array_equal(
      train[0]['image'], np.asarray(Image.open(raw['train_images'][0])))
  val = _examples(out, 'val_fine')
  np.testing.assert_array_equal(val[0]['label'][..., 0], raw['val_train_ids'])
  assert len(glob.glob(os.path.join(out, 'train_fine-*-of-00002.tfrecord'))) == 2


def test_wrong_layout(tmp_path):
  with pytest.raises(FileNotFoundError, match='does not have the Cityscapes layout'):
    cityscapes.build(str(tmp_path), str(tmp_path / 'out'))


def test_missing_label(tmp_path):
  raw = fixtures.write_cityscapes(str(tmp_path / 'cs'))
  os.remove(os.path.join(raw['root'], 'gtFine', 'train', 'aachen',
                         'aachen_000000_000010_gtFine_labelIds.png'))
  with pytest.raises(FileNotFoundError, match='No label for image .*aachen_000000_000010'):
    cityscapes.build(raw['root'], str(tmp_path / 'out'), ['train_fine'])


def test_size_mismatch_and_bad_train_ids(tmp_path):
  raw = fixtures.write_cityscapes(str(tmp_path / 'cs'))
  val_label = os.path.join(raw['root'], 'gtFine', 'val', 'frankfurt',
                           'frankfurt_000000_000020_gtFine_labelTrainIds.png')
  Image.fromarray(np.zeros((3, 3), np.uint8)).save(val_label)
  with pytest.raises(ValueError, match='frankfurt_000000_000020_gtFine_labelTrainIds.png is 3x3'):
    cityscapes.build(raw['root'], str(tmp_path / 'out'), ['val_fine'])
  Image.fromarray(np.full((8, 12), 19, np.uint8)).save(val_label)
  with pytest.raises(ValueError, match=r'labelTrainIds.png has values \[19\]'):
    cityscapes.build(raw['root'], str(tmp_path / 'out'), ['val_fine'])
  assert not os.path.exists(tmp_path / 'out') or not os.listdir(tmp_path / 'out')


def test_empty_split(tmp_path):
  root = tmp_path / 'cs'
  os.makedirs(root / 'leftImg8bit' / 'train')
  os.makedirs(root / 'gtFine' / 'train')
  with pytest.raises(ValueError, match='Split train_fine is empty'):
    cityscapes.build(str(root), str(tmp_path / 'out'), ['train_fine'])
