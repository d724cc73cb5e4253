"""Tests of the dataset descriptors and colormaps."""

import numpy as np
import pytest

from deeplab_dpc import constants
from deeplab_dpc.data import colormaps
from deeplab_dpc.data import descriptors


def test_original_split_sizes():
  cityscapes = descriptors.get_dataset_descriptor('cityscapes')
  assert cityscapes.splits_to_sizes['train_fine'] == 2975
  assert cityscapes.splits_to_sizes['val_fine'] == 500
  assert cityscapes.num_classes == 19
  voc = descriptors.get_dataset_descriptor('pascal_voc_seg')
  assert voc.splits_to_sizes == {'train': 1464, 'train_aug': 10582, 'trainval': 2913,
                                 'val': 1449}
  assert voc.num_classes == 21
  person = descriptors.get_dataset_descriptor('pascal_person_part')
  assert person.num_classes == 7 and person.splits_to_sizes == {'train': 1716, 'val': 1817}
  for name in descriptors.DATASET_NAMES:
    descriptor = descriptors.get_dataset_descriptor(name)
    assert descriptor.ignore_label == constants.IGNORE_LABEL
    assert len(descriptor.class_names) == descriptor.num_classes


def test_unknown_dataset_names_the_flag():
  with pytest.raises(ValueError, match='--dataset=.*ade20k'):
    descriptors.get_dataset_descriptor('ade20k')


def test_split_aliases():
  cityscapes = descriptors.CITYSCAPES
  assert cityscapes.canonical_split('train') == 'train_fine'
  assert cityscapes.canonical_split('val') == 'val_fine'
  with pytest.raises(ValueError, match="Unknown split 'bogus'"):
    cityscapes.canonical_split('bogus')


def test_colormaps():
  pascal = colormaps.colormap('pascal')
  assert pascal.shape == (256, 3) and pascal.dtype == np.uint8
  np.testing.assert_array_equal(pascal[:4], [[0, 0, 0], [128, 0, 0], [0, 128, 0],
                                             [128, 128, 0]])
  np.testing.assert_array_equal(pascal[255], [224, 224, 192])
  cityscapes = colormaps.colormap('cityscapes')
  np.testing.assert_array_equal(cityscapes[0], [128, 64, 128])  # road
  np.testing.assert_array_equal(cityscapes[18], [119, 11, 32])  # bicycle
  np.testing.assert_array_equal(cityscapes[255], [0, 0, 0])
  for name in ('person_part', 'demo'):
    assert descriptors.colormap(name).shape == (256, 3)
  with pytest.raises(ValueError, match='Unknown colormap'):
    colormaps.colormap('nope')


def test_colorize():
  label = np.array([[0, 1], [2, 255]], dtype=np.uint8)
  rgb = descriptors.colorize(label[..., None], 'pascal')
  assert rgb.shape == (2, 2, 3) and rgb.dtype == np.uint8
  np.testing.assert_array_equal(rgb[0, 1], [128, 0, 0])
  with pytest.raises(ValueError, match='Label values'):
    descriptors.colorize(np.array([[300]]), 'pascal')
