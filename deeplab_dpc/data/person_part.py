"""PASCAL-Person-Part (Chen et al. 2014): 7 classes, labels as PNG class-id maps.

Accepted layout (the commonly distributed one):

  <person_part_root>/
   JPEGImages/<id>.jpg
   SegmentationPart/<id>.png        class ids 0-6 (grayscale or palette)
   pascal_person_part_trainval_list/ (or a --list_folder elsewhere)
    train_id.txt, val_id.txt         one id per line, or
    train.txt, val.txt               lines '/JPEGImages/<id>.jpg /SegmentationPart/<id>.png'

Ids lists are tried first; in pair lists the paths are relative to the root.
"""

import os

from deeplab_dpc import fileio
from deeplab_dpc.data import descriptors
from deeplab_dpc.data import image_io
from deeplab_dpc.data import shard_writer
from deeplab_dpc.data import tfrecord

DEFAULT_NUM_SHARDS = 4
DEFAULT_SPLITS = ('train', 'val')
IMAGE_FOLDER = 'JPEGImages'
LABEL_FOLDER = 'SegmentationPart'
DEFAULT_LIST_FOLDER = 'pascal_person_part_trainval_list'


def _find_list(list_folder, split):
  for name in (f'{split}_id.txt', f'{split}.txt'):
    path = os.path.join(list_folder, name)
    if fileio.isfile(path):
      return path
  raise FileNotFoundError(f'No list for split {split!r}: neither {split}_id.txt nor '
                          f'{split}.txt in {list_folder}.')


def list_split(person_part_root, split, list_folder=None):
  """Lists the (image_path, label_path, name, list_path) entries of a split.

  Raises:
    FileNotFoundError: If the layout is wrong or the list is missing.
    ValueError: If a list line is malformed or the list is empty.
  """
  for folder in (IMAGE_FOLDER, LABEL_FOLDER):
    if not fileio.isdir(os.path.join(person_part_root, folder)):
      raise FileNotFoundError(
          f'{person_part_root} does not have the PASCAL-Person-Part layout: no {folder}/ '
          f'folder (expected {IMAGE_FOLDER}/, {LABEL_FOLDER}/ and list files).')
  if list_folder is None:
    list_folder = os.path.join(person_part_root, DEFAULT_LIST_FOLDER)
    if not fileio.isdir(list_folder):
      list_folder = person_part_root
  list_path = _find_list(list_folder, split)
  entries = []
  with fileio.open_file(list_path) as f:
    for line_number, line in enumerate(f, start=1):
      fields = line.split()
      if not fields:
        continue
      if len(fields) == 1:
        image_id = fields[0]
        image_path = os.path.join(person_part_root, IMAGE_FOLDER, image_id + '.jpg')
        label_path = os.path.join(person_part_root, LABEL_FOLDER, image_id + '.png')
      elif len(fields) == 2:
        image_path = os.path.join(person_part_root, fields[0].lstrip('/'))
        label_path = os.path.join(person_part_root, fields[1].lstrip('/'))
        image_id = os.path.splitext(os.path.basename(image_path))[0]
      else:
        raise ValueError(f'{list_path} line {line_number}: expected an id or '
                         f'"image label" paths, got {line.strip()!r}.')
      entries.append((image_path, label_path, image_id, list_path))
  if not entries:
    raise ValueError(f'Split list {list_path} is empty.')
  return entries


def to_example(entry):
  """Converts one list_split entry to a serialized example, checking the files."""
  image_path, label_path, image_id, list_path = entry
  image_bytes, image_format, height, width = image_io.read_image(image_path, list_path)
  label_bytes, label, storable = image_io.read_label(label_path, list_path)
  image_io.check_same_size(image_path, (height, width), label_path, label.shape)
  image_io.check_label_values(label_path, label, descriptors.PASCAL_PERSON_PART.num_classes,
                              descriptors.PASCAL_PERSON_PART.ignore_label)
  if not storable:
    label_bytes = image_io.encode_png(label)
  return tfrecord.encode_example(image_bytes, label_bytes, image_id, height, width,
                                 image_format)


def build(person_part_root, output_dir, splits=DEFAULT_SPLITS, list_folder=None,
          num_shards=DEFAULT_NUM_SHARDS):
  """Converts PASCAL-Person-Part splits to TFRecords.

  Returns:
    Dict split -> number of examples written.
  """
  written = {}
  for split in splits:
    descriptors.PASCAL_PERSON_PART.canonical_split(split)
    entries = list_split(person_part_root, split, list_folder)
    shard_writer.write_split(output_dir, split, entries, to_example, num_shards)
    shard_writer.check_split_size(descriptors.PASCAL_PERSON_PART, split, len(entries))
    written[split] = len(entries)
  return written
