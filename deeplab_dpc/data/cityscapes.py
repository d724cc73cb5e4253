"""Cityscapes: finds the files of a split and converts them to TFRecords.

Layout as the publisher ships it (the zips unpacked into one root):
`leftImg8bit/{train,val,test,train_extra}/<city>/<name>_leftImg8bit.png`,
`gtFine/{train,val,test}/<city>/<name>_gtFine_labelIds.png` and optionally
`gtCoarse/{train,val,train_extra}/<city>/<name>_gtCoarse_labelIds.png`.
Labels are stored as train ids (19 classes, 255 = ignore): the
`*_labelTrainIds.png` files written by cityscapesscripts'
`createTrainIdLabelImgs` are used when present, otherwise `*_labelIds.png`
is mapped through the official cityscapesscripts label table.
"""

import functools
import os

import numpy as np

from deeplab_dpc import constants
from deeplab_dpc import fileio
from deeplab_dpc.data import descriptors
from deeplab_dpc.data import image_io
from deeplab_dpc.data import shard_writer
from deeplab_dpc.data import tfrecord

DEFAULT_NUM_SHARDS = 10
DEFAULT_SPLITS = ('train_fine', 'val_fine')

_IMAGE_FOLDER = 'leftImg8bit'
_IMAGE_SUFFIX = '_leftImg8bit.png'

# (image sub-folder, annotation folder) pairs making up each split.
_SPLIT_PARTS = {
    'train_fine': (('train', 'gtFine'),),
    'val_fine': (('val', 'gtFine'),),
    'test_fine': (('test', 'gtFine'),),
    'trainval_fine': (('train', 'gtFine'), ('val', 'gtFine')),
    'train_coarse': (('train', 'gtCoarse'), ('train_extra', 'gtCoarse')),
    'trainval_coarse': (('train', 'gtCoarse'), ('val', 'gtCoarse'), ('train_extra', 'gtCoarse')),
}


@functools.lru_cache(maxsize=None)
def label_id_to_train_id():
  """Returns the uint8 [256] lookup table labelId -> trainId (255 = ignore).

  Built from cityscapesscripts' `labels` table, where trainIds 255 and -1
  both mean ignored; ids outside the table map to ignore as well.
  """
  from cityscapesscripts.helpers import labels as cs_labels  # pylint: disable=g-import-not-at-top
  table = np.full(256, constants.IGNORE_LABEL, dtype=np.uint8)
  for label in cs_labels.labels:
    if 0 <= label.id < 256 and 0 <= label.trainId < 255:
      table[label.id] = label.trainId
  table.flags.writeable = False
  return table


def list_split(cityscapes_root, split):
  """Lists the (image, label) files of a split.

  Args:
    cityscapes_root: Root folder holding `leftImg8bit/` and `gtFine/`.
    split: A Cityscapes split or alias ('train' = 'train_fine', ...).

  Returns:
    Sorted list of (image_path, label_path, label_is_train_ids) tuples.

  Raises:
    ValueError: If the split is unknown.
    FileNotFoundError: If the folder does not have the Cityscapes layout, or
      a split folder or an image's label file is missing.
  """
  split = descriptors.CITYSCAPES.canonical_split(split)
  image_root = os.path.join(cityscapes_root, _IMAGE_FOLDER)
  if not fileio.isdir(image_root):
    raise FileNotFoundError(
        f'{cityscapes_root} does not have the Cityscapes layout: no {_IMAGE_FOLDER}/ '
        'folder (expected leftImg8bit/<split>/<city>/*_leftImg8bit.png and gtFine/).')
  files = []
  for image_subdir, gt_folder in _SPLIT_PARTS[split]:
    image_dir = os.path.join(image_root, image_subdir)
    if not fileio.isdir(image_dir):
      raise FileNotFoundError(f'Split {split} needs the folder {image_dir}, which is missing.')
    gt_dir = os.path.join(cityscapes_root, gt_folder, image_subdir)
    if not fileio.isdir(gt_dir):
      raise FileNotFoundError(f'Split {split} needs the annotation folder {gt_dir}, '
                              'which is missing.')
    image_paths = [path for city_dir in fileio.glob_in(image_dir, '*')
                   for path in fileio.glob_in(city_dir, '*' + _IMAGE_SUFFIX)]
    for image_path in sorted(image_paths):
      city = os.path.basename(os.path.dirname(image_path))
      stem = os.path.basename(image_path)[:-len(_IMAGE_SUFFIX)]
      prefix = os.path.join(gt_dir, city, f'{stem}_{gt_folder}')
      if fileio.isfile(prefix + '_labelTrainIds.png'):
        files.append((image_path, prefix + '_labelTrainIds.png', True))
      elif fileio.isfile(prefix + '_labelIds.png'):
        files.append((image_path, prefix + '_labelIds.png', False))
      else:
        raise FileNotFoundError(
            f'No label for image {image_path}: neither {prefix}_labelTrainIds.png nor '
            f'{prefix}_labelIds.png exists.')
  return files


def to_example(entry):
  """Converts one (image_path, label_path, label_is_train_ids) entry to a serialized example.

  Raises:
    ValueError: If a file is corrupt, sizes differ or a label value is invalid.
  """
  image_path, label_path, is_train_ids = entry
  image_bytes, image_format, height, width = image_io.read_image(image_path)
  label_bytes, label, storable = image_io.read_label(label_path)
  image_io.check_same_size(image_path, (height, width), label_path, label.shape)
  if is_train_ids:
    image_io.check_label_values(label_path, label, descriptors.CITYSCAPES.num_classes,
                                descriptors.CITYSCAPES.ignore_label)
  else:
    label = label_id_to_train_id()[label]
    storable = False
  if not storable:
    label_bytes = image_io.encode_png(label)
  name = os.path.basename(image_path)[:-len(_IMAGE_SUFFIX)]
  return tfrecord.encode_example(image_bytes, label_bytes, name, height, width, image_format)


def build(cityscapes_root, output_dir, splits=DEFAULT_SPLITS, num_shards=DEFAULT_NUM_SHARDS):
  """Converts Cityscapes splits to TFRecords in `output_dir`.

  Args:
    cityscapes_root: Root folder of the unpacked Cityscapes zips.
    output_dir: Output folder of the shards.
    splits: Split names (aliases accepted; shards use the canonical name).
    num_shards: Shards per split (the original writes 10).

  Returns:
    Dict canonical split -> number of examples written.

  Raises:
    ValueError / FileNotFoundError: On bad layout or bad files, naming them.
  """
  written = {}
  for split in splits:
    split = descriptors.CITYSCAPES.canonical_split(split)
    entries = list_split(cityscapes_root, split)
    if not entries:
      raise ValueError(f'Split {split} is empty: no *{_IMAGE_SUFFIX} files under '
                       f'{os.path.join(cityscapes_root, _IMAGE_FOLDER)}.')
    shard_writer.write_split(output_dir, split, entries, to_example, num_shards)
    shard_writer.check_split_size(descriptors.CITYSCAPES, split, len(entries))
    written[split] = len(entries)
  return written
