"""`dataset_info.json`: what a folder of TFRecords built from the user's own data holds.

`datasets/build_custom_data.py` writes it beside the shards; every CLI given
`--dataset_dir` of such a folder (and no `--dataset`, or `--dataset=custom`)
reads the class count, ignore label, class names, split sizes and colormap from
it, so nothing about the dataset is restated in flags or code.

Format (version 1):

  {"format_version": 1, "name": "my_data", "num_classes": 3, "ignore_label": 255,
   "class_names": ["background", "cat", "dog"],
   "colormap": [[0, 0, 0], [128, 0, 0], [0, 128, 0]],
   "splits_to_sizes": {"train": 90, "val": 10},
   "class_pixel_counts": {"train": [n0, n1, n2], "val": [...]}}

`colormap` (one RGB triple per class) and `class_pixel_counts` (pixels of each
class per split, the ignore label not counted) may be absent.
"""

import json
import os

from deeplab_dpc import fileio

DATASET_INFO_FILE = 'dataset_info.json'
CUSTOM_DATASET = 'custom'
FORMAT_VERSION = 1


def info_path(dataset_dir: str) -> str:
  """The `dataset_info.json` path of `dataset_dir`."""
  return os.path.join(dataset_dir, DATASET_INFO_FILE)


def has_dataset_info(dataset_dir: str | None) -> bool:
  """Whether `dataset_dir` holds a `dataset_info.json`."""
  return bool(dataset_dir) and fileio.isfile(info_path(dataset_dir))


def _validate(info, path: str) -> dict:
  """Checks every field; ValueError naming `path` and the field at fault."""

  def fail(field, why):
    raise ValueError(f'{path}: field {field!r} {why}')

  if not isinstance(info, dict):
    raise ValueError(f'{path}: expected a JSON object, got {type(info).__name__}')
  if info.get('format_version') != FORMAT_VERSION:
    fail('format_version', f'must be {FORMAT_VERSION}, got {info.get("format_version")!r}')
  for field in ('name', 'num_classes', 'ignore_label', 'class_names', 'splits_to_sizes'):
    if field not in info:
      fail(field, 'is missing')
  if not isinstance(info['name'], str) or not info['name']:
    fail('name', f'must be a non-empty string, got {info["name"]!r}')
  num_classes = info['num_classes']
  if not isinstance(num_classes, int) or isinstance(num_classes, bool) or not \
      1 <= num_classes <= 255:
    fail('num_classes', f'must be an integer in [1, 255], got {num_classes!r}')
  ignore = info['ignore_label']
  if not isinstance(ignore, int) or isinstance(ignore, bool) or not 0 <= ignore <= 255:
    fail('ignore_label', f'must be an integer in [0, 255], got {ignore!r}')
  if ignore < num_classes:
    fail('ignore_label', f'{ignore} is a class id (num_classes is {num_classes})')
  names = info['class_names']
  if (not isinstance(names, list) or len(names) != num_classes or
      not all(isinstance(n, str) and n for n in names)):
    fail('class_names', f'must list {num_classes} non-empty names, got {names!r}')
  if len(set(names)) != len(names):
    fail('class_names', f'has duplicates: {names}')
  sizes = info['splits_to_sizes']
  if (not isinstance(sizes, dict) or not sizes or not all(
      isinstance(k, str) and isinstance(v, int) and v >= 0 for k, v in sizes.items())):
    fail('splits_to_sizes', f'must map split names to example counts, got {sizes!r}')
  colormap = info.get('colormap')
  if colormap is not None:
    if (not isinstance(colormap, list) or len(colormap) != num_classes or not all(
        isinstance(c, list) and len(c) == 3 and
        all(isinstance(x, int) and 0 <= x <= 255 for x in c) for c in colormap)):
      fail('colormap', f'must list {num_classes} [r, g, b] triples of 0-255 integers')
  counts = info.get('class_pixel_counts')
  if counts is not None:
    if not isinstance(counts, dict) or any(
        split not in sizes or not isinstance(c, list) or len(c) != num_classes or
        not all(isinstance(x, int) and x >= 0 for x in c) for split, c in counts.items()):
      fail('class_pixel_counts', f'must map splits of splits_to_sizes to {num_classes} '
           'non-negative pixel counts')
  return info


def make_dataset_info(*, name: str, class_names, ignore_label: int, splits_to_sizes: dict,
                      colormap=None, class_pixel_counts: dict | None = None) -> dict:
  """The validated `dataset_info.json` content (see the module docstring).

  Raises:
    ValueError: a bad field, named.
  """
  info = {'format_version': FORMAT_VERSION, 'name': name, 'num_classes': len(class_names),
          'ignore_label': int(ignore_label), 'class_names': list(class_names),
          'splits_to_sizes': {k: int(v) for k, v in splits_to_sizes.items()}}
  if colormap is not None:
    info['colormap'] = [[int(x) for x in c] for c in colormap]
  if class_pixel_counts is not None:
    info['class_pixel_counts'] = {k: [int(x) for x in v] for k, v in class_pixel_counts.items()}
  return _validate(info, DATASET_INFO_FILE)


def write_dataset_info(output_dir: str, **fields) -> str:
  """Writes `output_dir/dataset_info.json` atomically; returns its path.

  Args:
    output_dir: The folder of the shards.
    **fields: `make_dataset_info`'s keyword arguments.
  """
  info = make_dataset_info(**fields)
  path = info_path(output_dir)
  fileio.atomic_write(path, json.dumps(info, indent=1) + '\n')
  return path


def read_dataset_info(dataset_dir: str) -> dict:
  """Reads and validates `dataset_dir/dataset_info.json`.

  Raises:
    FileNotFoundError: no such file (the message names it and `--dataset_dir`).
    ValueError: not JSON, or a bad field (named, with the file).
  """
  path = info_path(dataset_dir)
  if not fileio.isfile(path):
    raise FileNotFoundError(
        f'--dataset_dir={dataset_dir} has no {DATASET_INFO_FILE}: build the folder with '
        'datasets/build_custom_data.py, or name a built-in dataset with --dataset')
  try:
    with fileio.open_file(path, encoding='utf-8') as f:
      info = json.load(f)
  except (json.JSONDecodeError, UnicodeDecodeError) as e:
    raise ValueError(f'{path} is not valid JSON ({e}); rebuild it with '
                     'datasets/build_custom_data.py') from None
  return _validate(info, path)
