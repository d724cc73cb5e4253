"""PASCAL VOC 2012 segmentation (and its SBD-augmented `train_aug` split).

Layout as the publisher ships it: `VOCdevkit/VOC2012/JPEGImages/<id>.jpg`,
`SegmentationClass/<id>.png` (colour-palette PNGs whose palette indices are the
class ids, 255 = object border = ignore) and `ImageSets/Segmentation/
{train,val,trainval}.txt`. A `SegmentationClassRaw/` folder written by the
original `remove_gt_colormap.py` is used instead when present.

`train_aug` needs the augmented labels of SBD (Hariharan et al. 2011), given
either as the commonly distributed `SegmentationClassAug/` PNG folder or as
SBD's own `benchmark_RELEASE/dataset/cls/` `.mat` files (which need scipy).
Its ids come from `train_aug.txt` in the list folder when present, otherwise
they are all augmented ids plus VOC train, minus VOC val: 10582 images.
"""

import io
import os

import numpy as np

from deeplab_dpc import fileio
from deeplab_dpc.data import descriptors
from deeplab_dpc.data import image_io
from deeplab_dpc.data import shard_writer
from deeplab_dpc.data import tfrecord

DEFAULT_NUM_SHARDS = 4
TRAIN_AUG = 'train_aug'


def default_folders(voc_root):
  """Returns (image_folder, semantic_segmentation_folder, list_folder) under a VOC2012 root."""
  raw = os.path.join(voc_root, 'SegmentationClassRaw')
  labels = raw if fileio.isdir(raw) else os.path.join(voc_root, 'SegmentationClass')
  return (os.path.join(voc_root, 'JPEGImages'), labels,
          os.path.join(voc_root, 'ImageSets', 'Segmentation'))


def _check_folder(path, flag):
  if not fileio.isdir(path):
    raise FileNotFoundError(f'{flag}={path} is not a folder; expected the PASCAL VOC 2012 '
                            'layout VOCdevkit/VOC2012/{JPEGImages,SegmentationClass,'
                            'ImageSets/Segmentation}.')


def read_list(list_path):
  """Reads image ids, one per line, from a list file.

  Raises:
    FileNotFoundError: If the list file is missing.
    ValueError: If it has no ids.
  """
  if not fileio.isfile(list_path):
    raise FileNotFoundError(f'List file {list_path} does not exist.')
  with fileio.open_file(list_path) as f:
    ids = [line.strip() for line in f if line.strip()]
  if not ids:
    raise ValueError(f'Split list {list_path} is empty.')
  return ids


def available_splits(list_folder):
  """Returns the split names of the `*.txt` lists in `list_folder`, sorted."""
  return sorted(os.path.basename(p)[:-4] for p in fileio.glob_in(list_folder, '*.txt'))


def _aug_label_dir(aug_folder):
  # SBD ships `dataset/cls/*.mat`; accept its root, its `dataset/` or `cls/`.
  for candidate in (os.path.join(aug_folder, 'dataset', 'cls'), os.path.join(aug_folder, 'cls')):
    if fileio.isdir(candidate):
      return candidate
  return aug_folder


def _aug_ids(aug_dir):
  ids = {os.path.splitext(n)[0] for n in fileio.listdir(aug_dir)
         if n.endswith(('.png', '.mat'))}
  if not ids:
    raise FileNotFoundError(f'--train_aug_label_folder={aug_dir} has no .png or .mat labels.')
  return ids


def read_sbd_mat(path):
  """Reads the class map of an SBD `cls/<id>.mat` file (needs scipy).

  Raises:
    ValueError: If scipy is missing or the file is not an SBD class file.
  """
  try:
    from scipy import io as scipy_io  # pylint: disable=g-import-not-at-top
  except ImportError:
    raise ValueError(f'Reading SBD label {path} needs scipy (pip install scipy); or give '
                     'the SegmentationClassAug PNG folder instead.') from None
  try:
    with fileio.open_file(path, 'rb') as f:
      mat = scipy_io.loadmat(io.BytesIO(f.read()), mat_dtype=False, squeeze_me=True,
                             struct_as_record=False)
    label = np.asarray(mat['GTcls'].Segmentation)
  except (KeyError, AttributeError, ValueError, OSError) as e:
    raise ValueError(f'{path} is not an SBD class label file: {e}') from None
  if label.ndim != 2 or label.size == 0 or label.max() > 255:
    raise ValueError(f'{path} is not an SBD class label file (bad Segmentation array).')
  return label.astype(np.uint8)


def list_split(image_folder, semantic_segmentation_folder, list_folder, split,
               image_format='jpg', train_aug_label_folder=None):
  """Lists the (image_path, label_path, name, list_path) entries of a split.

  Args:
    image_folder: Folder of `<id>.<image_format>` images.
    semantic_segmentation_folder: Folder of `<id>.png` labels.
    list_folder: Folder of `<split>.txt` id lists.
    split: Split name, e.g. 'train', 'val', 'trainval' or 'train_aug'.
    image_format: Image extension ('jpg' for VOC).
    train_aug_label_folder: SBD label folder, needed for 'train_aug'.

  Returns:
    List of (image_path, label_path, image_id, list_path) tuples.

  Raises:
    FileNotFoundError / ValueError: On a wrong layout or missing list.
  """
  _check_folder(image_folder, '--image_folder')
  _check_folder(semantic_segmentation_folder, '--semantic_segmentation_folder')
  _check_folder(list_folder, '--list_folder')
  list_path = os.path.join(list_folder, split + '.txt')
  if split == TRAIN_AUG:
    if not train_aug_label_folder:
      raise ValueError('Split train_aug needs --train_aug_label_folder (SBD labels).')
    _check_folder(train_aug_label_folder, '--train_aug_label_folder')
    aug_dir = _aug_label_dir(train_aug_label_folder)
    aug_ids = _aug_ids(aug_dir)
    if fileio.isfile(list_path):
      ids = read_list(list_path)
    else:
      train = read_list(os.path.join(list_folder, 'train.txt'))
      val = set(read_list(os.path.join(list_folder, 'val.txt')))
      ids = sorted((aug_ids | set(train)) - val)
      list_path = f'{aug_dir} (train_aug = SBD + train - val)'
    entries = []
    for image_id in ids:
      label_path = os.path.join(semantic_segmentation_folder, image_id + '.png')
      for ext in ('.png', '.mat'):
        if fileio.isfile(os.path.join(aug_dir, image_id + ext)):
          label_path = os.path.join(aug_dir, image_id + ext)
          break
      entries.append((os.path.join(image_folder, f'{image_id}.{image_format}'),
                      label_path, image_id, list_path))
    return entries
  ids = read_list(list_path)
  return [(os.path.join(image_folder, f'{image_id}.{image_format}'),
           os.path.join(semantic_segmentation_folder, image_id + '.png'), image_id, list_path)
          for image_id in ids]


def to_example(entry):
  """Converts one list_split entry to a serialized example, checking the files."""
  image_path, label_path, image_id, list_path = entry
  image_bytes, image_format, height, width = image_io.read_image(image_path, list_path)
  if label_path.endswith('.mat'):
    if not fileio.isfile(label_path):
      raise FileNotFoundError(f'Label file {label_path} (listed in {list_path}) does '
                              'not exist.')
    label, storable, label_bytes = read_sbd_mat(label_path), False, None
  else:
    label_bytes, label, storable = image_io.read_label(label_path, list_path)
  image_io.check_same_size(image_path, (height, width), label_path, label.shape)
  image_io.check_label_values(label_path, label, descriptors.PASCAL_VOC_SEG.num_classes,
                              descriptors.PASCAL_VOC_SEG.ignore_label)
  if not storable:
    # Palette PNGs would decode to grey levels, not class ids, in TF.
    label_bytes = image_io.encode_png(label)
  return tfrecord.encode_example(image_bytes, label_bytes, image_id, height, width,
                                 image_format)


def build(output_dir, image_folder, semantic_segmentation_folder, list_folder, splits=None,
          image_format='jpg', train_aug_label_folder=None, num_shards=DEFAULT_NUM_SHARDS):
  """Converts PASCAL VOC 2012 splits to TFRecords.

  Args:
    output_dir: Output folder of the shards.
    image_folder: `JPEGImages` folder.
    semantic_segmentation_folder: `SegmentationClass` (palette) or
      `SegmentationClassRaw` folder.
    list_folder: `ImageSets/Segmentation` folder.
    splits: Splits to build; None builds every `*.txt` list in
      `list_folder` (as the original does), plus 'train_aug' when
      `train_aug_label_folder` is given.
    image_format: Image file extension.
    train_aug_label_folder: SBD labels for 'train_aug'.
    num_shards: Shards per split (the original writes 4).

  Returns:
    Dict split -> number of examples written.
  """
  if splits is None:
    _check_folder(list_folder, '--list_folder')
    splits = [s for s in available_splits(list_folder) if s != TRAIN_AUG]
    if not splits:
      raise FileNotFoundError(f'--list_folder={list_folder} has no <split>.txt lists.')
    if train_aug_label_folder:
      splits.append(TRAIN_AUG)
  written = {}
  for split in splits:
    entries = list_split(image_folder, semantic_segmentation_folder, list_folder, split,
                         image_format, train_aug_label_folder)
    shard_writer.write_split(output_dir, split, entries, to_example, num_shards)
    shard_writer.check_split_size(descriptors.PASCAL_VOC_SEG, split, len(entries))
    written[split] = len(entries)
  return written
