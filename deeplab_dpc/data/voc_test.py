"""Tests of the PASCAL VOC 2012 builder."""

import glob
import os

import numpy as np
from PIL import Image
import pytest

from deeplab_dpc.data import fixtures
from deeplab_dpc.data import tfrecord
from deeplab_dpc.data import voc


def _examples(output_dir, split):
  return [e for p in sorted(glob.glob(os.path.join(output_dir, split + '-*')))
          for e in tfrecord.read_examples(p)]


def _build(raw, out, **kwargs):
  folders = voc.default_folders(raw['root'])
  return voc.build(out, *folders, **kwargs)


def test_palette_labels_become_class_ids(tmp_path):
  raw = fixtures.write_voc(str(tmp_path / 'VOC2012'))
  out = str(tmp_path / 'out')
  assert _build(raw, out) == {'train': 2, 'val': 1}
  train = _examples(out, 'train')
  assert [e['image_name'] for e in train] == ['2007_000001', '2007_000002']
  for example in train:
    np.testing.assert_array_equal(example['label'][..., 0], raw['labels'][example['image_name']])
    assert example['label'][0, 0, 0] == 255
  assert len(glob.glob(os.path.join(out, 'val-*-of-00004.tfrecord'))) == 4


def test_train_aug_from_segmentation_class_aug(tmp_path):
  raw = fixtures.write_voc(str(tmp_path / 'VOC2012'),
                           aug_ids=['2008_000001', '2007_000003', '2007_000001'])
  out = str(tmp_path / 'out')
  written = _build(raw, out, train_aug_label_folder=raw['aug_folder'])
  # (aug ids | train) - val.
  assert written['train_aug'] == 3
  examples = {e['image_name']: e for e in _examples(out, 'train_aug')}
  assert sorted(examples) == ['2007_000001', '2007_000002', '2008_000001']
  np.testing.assert_array_equal(examples['2008_000001']['label'][..., 0],
                                raw['aug_labels']['2008_000001'])
  # An id without SBD label falls back to the VOC label.
  np.testing.assert_array_equal(examples['2007_000002']['label'][..., 0],
                                raw['labels']['2007_000002'])


def test_missing_file_named_with_its_list(tmp_path):
  raw = fixtures.write_voc(str(tmp_path / 'VOC2012'))
  os.remove(os.path.join(raw['root'], 'JPEGImages', '2007_000002.jpg'))
  with pytest.raises(FileNotFoundError, match=r'2007_000002.jpg \(listed in .*train.txt\)'):
    _build(raw, str(tmp_path / 'out'), splits=['train'])


def test_empty_list(tmp_path):
  raw = fixtures.write_voc(str(tmp_path / 'VOC2012'))
  open(os.path.join(raw['root'], 'ImageSets', 'Segmentation', 'val.txt'), 'w').close()
  with pytest.raises(ValueError, match='val.txt is empty'):
    _build(raw, str(tmp_path / 'out'), splits=['val'])


def test_bad_label_values_and_wrong_layout(tmp_path):
  raw = fixtures.write_voc(str(tmp_path / 'VOC2012'))
  Image.fromarray(np.full((10, 14), 21, np.uint8)).save(
      os.path.join(raw['root'], 'SegmentationClass', '2007_000003.png'))
  with pytest.raises(ValueError, match=r'2007_000003.png has values \[21\]'):
    _build(raw, str(tmp_path / 'out'), splits=['val'])
  with pytest.raises(FileNotFoundError, match='--list_folder=.*PASCAL VOC 2012 layout'):
    voc.build(str(tmp_path / 'out'), *voc.default_folders(str(tmp_path / 'nothing')))


def test_sbd_mat_needs_scipy_or_reads(tmp_path):
  path = str(tmp_path / 'x.mat')
  try:
    import scipy.io  # pylint: disable=g-import-not-at-top
  except ImportError:
    open(path, 'wb').close()
    with pytest.raises(ValueError, match='needs scipy'):
      voc.read_sbd_mat(path)
    return
  label = np.arange(12, dtype=np.uint8).reshape(3, 4)
  scipy.io.savemat(path, {'GTcls': {'Segmentation': label}})
  np.testing.assert_array_equal(voc.read_sbd_mat(path), label)
