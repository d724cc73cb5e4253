"""Tiny raw datasets in their publishers' layouts, written for tests.

Used by the builder and pipeline tests; nothing here is downloaded. Each
writer returns the paths a test needs.
"""

import os

import numpy as np
from PIL import Image

from deeplab_dpc.data import colormaps


def _save(path, array, mode=None, palette=None):
  os.makedirs(os.path.dirname(path), exist_ok=True)
  image = Image.fromarray(np.asarray(array, dtype=np.uint8), mode)
  if palette is not None:
    image.putpalette(palette)
  image.save(path)


def random_image(rng, height, width):
  """Returns a random uint8 [height, width, 3] image."""
  return rng.integers(0, 256, size=(height, width, 3), dtype=np.uint8)


def write_cityscapes(root, height=8, width=12, train_ids_for_val=True):
  """Writes a Cityscapes-layout folder: 2 train images (labelIds), 1 val image.

  The val label is written as `*_labelTrainIds.png` when `train_ids_for_val`,
  so both label kinds are exercised.

  Returns:
    Dict with 'root', 'train_label_ids' (list of the raw labelId arrays),
    'val_train_ids' (array), 'train_images' (list of paths).
  """
  rng = np.random.default_rng(0)
  out = {'root': root, 'train_label_ids': [], 'train_images': []}
  for i, city in enumerate(['aachen', 'bochum']):
    stem = f'{city}_000000_00001{i}'
    image_path = os.path.join(root, 'leftImg8bit', 'train', city, stem + '_leftImg8bit.png')
    _save(image_path, random_image(rng, height, width))
    # Every labelId 0-33 somewhere, to test the whole mapping.
    label_ids = (np.arange(height * width) % 34).reshape(height, width)
    _save(os.path.join(root, 'gtFine', 'train', city, stem + '_gtFine_labelIds.png'),
          label_ids)
    out['train_label_ids'].append(label_ids)
    out['train_images'].append(image_path)
  stem = 'frankfurt_000000_000020'
  _save(os.path.join(root, 'leftImg8bit', 'val', 'frankfurt', stem + '_leftImg8bit.png'),
        random_image(rng, height, width))
  train_ids = (np.arange(height * width) % 20).reshape(height, width)
  train_ids[train_ids == 19] = 255
  kind = 'labelTrainIds' if train_ids_for_val else 'labelIds'
  _save(os.path.join(root, 'gtFine', 'val', 'frankfurt', f'{stem}_gtFine_{kind}.png'),
        train_ids)
  out['val_train_ids'] = train_ids
  return out


def write_voc(root, ids_by_split=None, height=10, width=14, aug_ids=None):
  """Writes a VOCdevkit/VOC2012-layout folder with palette label PNGs.

  Args:
    root: The VOC2012 folder to create.
    ids_by_split: Dict split -> ids; default train: a, b; val: c.
    height: Image height.
    width: Image width.
    aug_ids: If given, also writes `SegmentationClassAug/<id>.png` (grayscale)
      for these ids next to `root`.

  Returns:
    Dict with 'root', 'labels' (id -> class-index array), 'aug_folder',
    'aug_labels'.
  """
  ids_by_split = ids_by_split or {'train': ['2007_000001', '2007_000002'],
                                  'val': ['2007_000003']}
  rng = np.random.default_rng(1)
  palette = colormaps.colormap('pascal').reshape(-1).tolist()
  all_ids = sorted({i for ids in ids_by_split.values() for i in ids} | set(aug_ids or []))
  labels = {}
  for image_id in all_ids:
    Image.fromarray(random_image(rng, height, width)).save(
        _mkdirs(os.path.join(root, 'JPEGImages', image_id + '.jpg')), quality=95)
    label = rng.integers(0, 21, size=(height, width)).astype(np.uint8)
    label[0, :] = 255  # The object border of VOC labels.
    _save(os.path.join(root, 'SegmentationClass', image_id + '.png'), label, 'P', palette)
    labels[image_id] = label
  list_dir = os.path.join(root, 'ImageSets', 'Segmentation')
  os.makedirs(list_dir, exist_ok=True)
  for split, ids in ids_by_split.items():
    with open(os.path.join(list_dir, split + '.txt'), 'w') as f:
      f.write(''.join(i + '\n' for i in ids))
  out = {'root': root, 'labels': labels}
  if aug_ids:
    aug_folder = os.path.join(os.path.dirname(root), 'SegmentationClassAug')
    out['aug_folder'] = aug_folder
    out['aug_labels'] = {}
    for image_id in aug_ids:
      label = rng.integers(0, 21, size=(height, width)).astype(np.uint8)
      _save(os.path.join(aug_folder, image_id + '.png'), label)
      out['aug_labels'][image_id] = label
  return out


def write_person_part(root, pair_lists=False, height=9, width=11):
  """Writes a PASCAL-Person-Part-layout folder: 2 train, 1 val image.

  Args:
    root: Folder to create.
    pair_lists: Write 'train.txt' image/label pair lists instead of
      'train_id.txt' id lists.

  Returns:
    Dict with 'root' and 'labels' (id -> array).
  """
  rng = np.random.default_rng(2)
  splits = {'train': ['2008_000003', '2008_000008'], 'val': ['2008_000026']}
  labels = {}
  list_dir = os.path.join(root, 'pascal_person_part_trainval_list')
  os.makedirs(list_dir, exist_ok=True)
  for split, ids in splits.items():
    lines = []
    for image_id in ids:
      Image.fromarray(random_image(rng, height, width)).save(
          _mkdirs(os.path.join(root, 'JPEGImages', image_id + '.jpg')))
      label = rng.integers(0, 7, size=(height, width)).astype(np.uint8)
      _save(os.path.join(root, 'SegmentationPart', image_id + '.png'), label)
      labels[image_id] = label
      lines.append(f'/JPEGImages/{image_id}.jpg /SegmentationPart/{image_id}.png'
                   if pair_lists else image_id)
    name = f'{split}.txt' if pair_lists else f'{split}_id.txt'
    with open(os.path.join(list_dir, name), 'w') as f:
      f.write('\n'.join(lines) + '\n')
  return {'root': root, 'labels': labels}


def _mkdirs(path):
  os.makedirs(os.path.dirname(path), exist_ok=True)
  return path
