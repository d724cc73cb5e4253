"""A tiny custom dataset folder (shards plus `dataset_info.json`) written for tests.

The folder is what `datasets/build_custom_data.py` produces, written directly
(shards through `shard_writer`, the file through `dataset_info`) so the
consumers' tests do not depend on the builder.
"""

import numpy as np

from deeplab_dpc.data import dataset_info
from deeplab_dpc.data import image_io
from deeplab_dpc.data import shard_writer
from deeplab_dpc.data import tfrecord

CLASS_NAMES = ('sky', 'grass', 'cow')
COLORS = ((10, 20, 30), (0, 200, 0), (200, 0, 0))
IGNORE_LABEL = 255


def _sample(index: int, size: int, num_classes: int, absent: tuple):
  """An image whose colour tells its class: class c is bright in channel c."""
  rng = np.random.default_rng(index)
  label = np.zeros((size, size), np.uint8)
  # Horizontal bands of classes, shifted per image; the last row is ignored.
  rows = (np.arange(size) * num_classes // size + index) % num_classes
  label[:] = rows[:, None]
  for cls in absent:
    label[label == cls] = 0
  label[-1, :] = IGNORE_LABEL
  image = rng.integers(0, 40, size=(size, size, 3)).astype(np.uint8)
  for cls in range(num_classes):
    image[..., cls % 3][label == cls] += 180
  return image, label


def write(directory: str, num_train: int = 6, num_val: int = 2, size: int = 33,
          with_counts: bool = True, absent: tuple = (), with_colors: bool = True) -> dict:
  """Writes train and val shards and `dataset_info.json` into `directory`.

  Args:
    directory: The dataset folder (created).
    num_train: Training examples.
    num_val: Validation examples.
    size: Height and width of every image.
    with_counts: Record `class_pixel_counts`.
    absent: Classes drawn nowhere (their pixels become class 0).
    with_colors: Record the class colours.

  Returns:
    {'dir', 'counts' ({split: per-class pixels}), 'labels' ({split: [arrays]})}.
  """
  num_classes = len(CLASS_NAMES)
  counts, labels = {}, {}
  for split, offset, count in (('train', 0, num_train), ('val', 100, num_val)):
    samples = [_sample(offset + i, size, num_classes, absent) for i in range(count)]
    labels[split] = [label for _, label in samples]
    counts[split] = [int(sum((label == c).sum() for label in labels[split]))
                     for c in range(num_classes)]

    def to_example(i, samples=samples, split=split):
      image, label = samples[i]
      return tfrecord.encode_example(image_io.encode_png(image), image_io.encode_png(label),
                                     f'{split}_{i}', size, size)

    shard_writer.write_split(directory, split, list(range(count)), to_example, 1)
  dataset_info.write_dataset_info(
      directory, name='fields', class_names=CLASS_NAMES, ignore_label=IGNORE_LABEL,
      splits_to_sizes={'train': num_train, 'val': num_val},
      colormap=COLORS if with_colors else None,
      class_pixel_counts=counts if with_counts else None)
  return {'dir': directory, 'counts': counts, 'labels': labels}
