"""Tests of the dataset descriptors and colormaps."""

import numpy as np
import pytest

from deeplab_dpc import constants
from deeplab_dpc.data import colormaps
from deeplab_dpc.data import dataset_info
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


def _custom_dir(tmp_path, colormap=((10, 20, 30), (0, 200, 0), (200, 0, 0))):
  dataset_info.write_dataset_info(
      str(tmp_path), name='fields', class_names=['sky', 'grass', 'cow'], ignore_label=254,
      splits_to_sizes={'train': 6, 'val': 2}, colormap=colormap,
      class_pixel_counts={'train': [1, 2, 3]})
  return str(tmp_path)


@pytest.mark.parametrize('name', [None, '', 'custom'])
def test_a_folder_with_dataset_info_is_a_custom_dataset(tmp_path, name):
  directory = _custom_dir(tmp_path)
  assert descriptors.resolve_dataset_name(name, directory) == 'custom'
  descriptor = descriptors.get_dataset_descriptor(name, directory)
  assert descriptor.name == 'custom'
  assert descriptor.num_classes == 3 and descriptor.ignore_label == 254
  assert descriptor.class_names == ('sky', 'grass', 'cow')
  assert descriptor.splits_to_sizes == {'train': 6, 'val': 2}
  assert descriptor.class_pixel_counts == {'train': (1, 2, 3)}
  assert descriptor.canonical_split('val') == 'val'
  assert descriptor.flag == f'--dataset=custom ({directory}/dataset_info.json)'
  colormap = descriptor.colormap()
  assert colormap.shape == (256, 3) and colormap.dtype == np.uint8
  np.testing.assert_array_equal(colormap[:3], [[10, 20, 30], [0, 200, 0], [200, 0, 0]])
  # The classes past the file's own colours (and the ignore label) keep PASCAL's.
  np.testing.assert_array_equal(colormap[3:], colormaps.colormap('pascal')[3:])


def test_a_custom_dataset_without_colours_draws_in_pascal_colours(tmp_path):
  descriptor = descriptors.get_dataset_descriptor(None, _custom_dir(tmp_path, colormap=None))
  assert descriptor.colors is None
  np.testing.assert_array_equal(descriptor.colormap(), colormaps.colormap('pascal'))


def test_built_in_names_win_over_the_file(tmp_path):
  directory = _custom_dir(tmp_path)
  assert descriptors.get_dataset_descriptor('demo', directory) is descriptors.DEMO
  assert descriptors.resolve_dataset_name('cityscapes', directory) == 'cityscapes'


def test_unset_without_a_file_is_the_original_default(tmp_path):
  assert descriptors.resolve_dataset_name(None, str(tmp_path)) == 'pascal_voc_seg'
  assert descriptors.resolve_dataset_name('', None, default='cityscapes') == 'cityscapes'
  assert descriptors.get_dataset_descriptor(None) is descriptors.PASCAL_VOC_SEG


def test_custom_without_the_file_names_the_flag_and_the_file(tmp_path):
  with pytest.raises(FileNotFoundError, match=f'--dataset=custom .*--dataset_dir={tmp_path} '
                     'has no dataset_info.json'):
    descriptors.get_dataset_descriptor('custom', str(tmp_path))
  with pytest.raises(FileNotFoundError, match='no --dataset_dir holding dataset_info.json'):
    descriptors.resolve_dataset_name('custom', None)


def test_colorize_takes_a_colour_table():
  label = np.array([[0, 1], [2, 255]], dtype=np.uint8)
  rgb = colormaps.colorize(label, [[1, 2, 3], [4, 5, 6]])
  np.testing.assert_array_equal(rgb[0], [[1, 2, 3], [4, 5, 6]])
  np.testing.assert_array_equal(rgb[1], colormaps.colormap('pascal')[[2, 255]])
  with pytest.raises(ValueError, match='A colormap must be'):
    colormaps.colorize(label, [[1, 2]])
  with pytest.raises(ValueError, match='A colormap must be'):
    colormaps.colorize(label, [[1, 2, 300]])
