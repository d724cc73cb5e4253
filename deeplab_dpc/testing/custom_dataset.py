"""A tiny custom dataset folder (shards plus `dataset_info.json`) written for tests.

`write` produces what `datasets/build_custom_data.py` would, written directly
(shards through `shard_writer`, the file through `dataset_info`), so consumers'
tests of one field do not depend on the builder. `build_from_files` writes the
same scenes as a user's folder of files (JPEG and PNG images of two sizes; index,
palette and RGB colour masks with a colour map) and runs the builder on it, for
the end-to-end tests.
"""

import json
import os

import numpy as np
from PIL import Image

from deeplab_dpc.data import custom
from deeplab_dpc.data import dataset_info
from deeplab_dpc.data import image_io
from deeplab_dpc.data import shard_writer
from deeplab_dpc.data import tfrecord

CLASS_NAMES = ('sky', 'grass', 'cow')
COLORS = ((10, 20, 30), (0, 200, 0), (200, 0, 0))
IGNORE_LABEL = 255


def _sample(index: int, size: int, num_classes: int, absent: tuple,
            ignore_label: int = IGNORE_LABEL):
  """An image whose colour tells its class: class c is bright in channel c."""
  rng = np.random.default_rng(index)
  label = np.zeros((size, size), np.uint8)
  # Horizontal bands of classes, shifted per image; the last row is ignored.
  rows = (np.arange(size) * num_classes // size + index) % num_classes
  label[:] = rows[:, None]
  for cls in absent:
    label[label == cls] = 0
  label[-1, :] = ignore_label
  image = rng.integers(0, 40, size=(size, size, 3)).astype(np.uint8)
  for cls in range(num_classes):
    image[..., cls % 3][label == cls] += 180
  return image, label


def write(directory: str, num_train: int = 6, num_val: int = 2, size: int = 33,
          with_counts: bool = True, absent: tuple = (), with_colors: bool = True,
          ignore_label: int = IGNORE_LABEL) -> dict:
  """Writes train and val shards and `dataset_info.json` into `directory`.

  Args:
    directory: The dataset folder (created).
    num_train: Training examples.
    num_val: Validation examples.
    size: Height and width of every image.
    with_counts: Record `class_pixel_counts`.
    absent: Classes drawn nowhere (their pixels become class 0).
    with_colors: Record the class colours.
    ignore_label: The label of the last row of every image.

  Returns:
    {'dir', 'counts' ({split: per-class pixels}), 'labels' ({split: [arrays]})}.
  """
  num_classes = len(CLASS_NAMES)
  counts, labels = {}, {}
  for split, offset, count in (('train', 0, num_train), ('val', 100, num_val)):
    samples = [_sample(offset + i, size, num_classes, absent, ignore_label)
               for i in range(count)]
    labels[split] = [label for _, label in samples]
    counts[split] = [int(sum((label == c).sum() for label in labels[split]))
                     for c in range(num_classes)]

    def to_example(i, samples=samples, split=split):
      image, label = samples[i]
      return tfrecord.encode_example(image_io.encode_png(image), image_io.encode_png(label),
                                     f'{split}_{i}', size, size)

    shard_writer.write_split(directory, split, list(range(count)), to_example, 1)
  dataset_info.write_dataset_info(
      directory, name='fields', class_names=CLASS_NAMES, ignore_label=ignore_label,
      splits_to_sizes={'train': num_train, 'val': num_val},
      colormap=COLORS if with_colors else None,
      class_pixel_counts=counts if with_counts else None)
  return {'dir': directory, 'counts': counts, 'labels': labels}


def _palette():
  """A 256-entry palette whose first colours are the classes' (PIL keeps index 255 then)."""
  colours = list(COLORS) + [(7, 7, 7)] * (256 - len(COLORS))
  return [c for rgb in colours for c in rgb]


def build_from_files(directory: str, num_train: int = 6, num_val: int = 2, size: int = 33,
                     absent: tuple = ()) -> dict:
  """Writes a folder of files under `directory/files` and builds it into `directory/tfrecords`.

  Example k (train first, then val) has image `s<k>` as a PNG when k is even and a
  JPEG when odd, 8 pixels smaller on each side when k % 4 == 3, and its mask as
  an index PNG (k % 3 == 0), a palette PNG (1) or an RGB colour mask (2) read
  through `files/color_map.json`, which maps each class to `COLORS` and white to
  the ignore label.

  Returns:
    {'dir' (the built folder), 'info' (its dataset_info.json), 'labels' ({split:
    [arrays]}), 'counts' ({split: per-class pixels})}.
  """
  files = os.path.join(directory, 'files')
  folders = {k: os.path.join(files, k) for k in ('images', 'masks', 'lists')}
  for folder in folders.values():
    os.makedirs(folder, exist_ok=True)
  color_map = {'#%02x%02x%02x' % rgb: c for c, rgb in enumerate(COLORS)}
  color_map['#ffffff'] = IGNORE_LABEL
  color_map_path = os.path.join(files, 'color_map.json')
  with open(color_map_path, 'w', encoding='utf-8') as f:
    json.dump(color_map, f)
  num_classes = len(CLASS_NAMES)
  labels, counts, k = {}, {}, 0
  for split, offset, count in (('train', 0, num_train), ('val', 100, num_val)):
    stems, labels[split] = [], []
    for i in range(count):
      side = size - 8 if k % 4 == 3 else size
      image, label = _sample(offset + i, side, num_classes, absent)
      stem = f's{k}'
      Image.fromarray(image).save(os.path.join(folders['images'],
                                               stem + ('.png' if k % 2 == 0 else '.jpg')))
      mask_path = os.path.join(folders['masks'], stem + '.png')
      if k % 3 == 0:
        Image.fromarray(label).save(mask_path)
      elif k % 3 == 1:
        palette = Image.fromarray(label, mode='P')
        palette.putpalette(_palette())
        palette.save(mask_path)
      else:
        rgb = {c: COLORS[c] for c in range(num_classes)}
        rgb[IGNORE_LABEL] = (255, 255, 255)
        Image.fromarray(np.asarray([[rgb[v] for v in row] for row in label], np.uint8)
                        ).save(mask_path)
      stems.append(stem)
      labels[split].append(label)
      k += 1
    with open(os.path.join(folders['lists'], f'{split}.txt'), 'w', encoding='utf-8') as f:
      f.write('\n'.join(stems) + '\n')
    counts[split] = [int(sum((l == c).sum() for l in labels[split])) for c in range(num_classes)]
  output = os.path.join(directory, 'tfrecords')
  info = custom.build(output, folders['images'], folders['masks'],
                      list_folder=folders['lists'], class_names=','.join(CLASS_NAMES),
                      color_map=color_map_path, num_shards=1, dataset_name='fields')
  return {'dir': output, 'info': info, 'labels': labels, 'counts': counts}
