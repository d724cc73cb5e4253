"""Your own dataset: a folder of images and masks to TFRecords plus `dataset_info.json`.

Images are `<stem>.jpg|jpeg|png` in one folder, masks `<stem>.png` in another,
paired by stem. A mask is a single-channel PNG of class ids, a palette PNG
(its indices are the class ids, as in PASCAL's `SegmentationClass`) or an RGB
colour mask read through a `--color_map` JSON file. Splits come from the
original's `<split>.txt` lists or from a seeded train/val draw.

Everything is read and checked before anything is written, because the
mistakes users of the original release made most (colour masks, 0/255 masks,
1-based classes, masks of another size) otherwise only show as a model that
learns garbage. Each problem is one line naming the file and, where it can be
guessed, the likely cause. `dataset_info.json` is written after the shards, so
a killed build never leaves one describing shards that are not there.
"""

import concurrent.futures
import dataclasses
import json
import os
import re

from absl import logging
import numpy as np
from PIL import Image

from deeplab_dpc import constants
from deeplab_dpc import fileio
from deeplab_dpc.data import colormaps
from deeplab_dpc.data import dataset_info
from deeplab_dpc.data import image_io
from deeplab_dpc.data import shard_writer
from deeplab_dpc.data import tfrecord
from deeplab_dpc.data import voc

DEFAULT_NUM_SHARDS = 4
DEFAULT_VAL_FRACTION = 0.1
IMAGE_FORMATS = ('jpg', 'jpeg', 'png')
LABEL_FORMAT = 'png'
MAX_NUM_CLASSES = 255
TRAIN_SPLIT = 'train'
VAL_SPLIT = 'val'

# How many offending files, colours or values one error line names.
_SHOWN = 5
# Conversions of images to RGB named one by one before a summary line.
_NAMED_WARNINGS = 5
_PROGRESS_EVERY = 1000
# PNG bytes 24 and 25 (in IHDR) are the bit depth and the colour type.
_PNG_8BIT_GRAY = b'\x08\x00'
_UNKNOWN_COLOUR = -1


def _fail(message):
  raise ValueError(message)


def _listing(values, limit=_SHOWN):
  """`values` as a short list for a message: '[1, 2, 3, ...]' past `limit`."""
  values = [int(v) for v in values]
  shown = ', '.join(str(v) for v in values[:limit])
  return f'[{shown}, ...]' if len(values) > limit else f'[{shown}]'


def _more(count, what):
  return f' (and {count} more {what})' if count else ''


def resolve_class_names(class_names=None, num_classes=None):
  """The class names from `--class_names` or `--num_classes` (exactly one of them).

  Args:
    class_names: Comma-separated names ('background,cat,dog') or a sequence
      of names; class i is the i-th name.
    num_classes: Number of classes; they are named 'class_0', 'class_1', ...

  Returns:
    The list of names, one per class id.

  Raises:
    ValueError: Neither or both given, a count outside [1, 255], an empty or
      a repeated name.
  """
  if isinstance(class_names, str):
    class_names = [name.strip() for name in class_names.split(',')]
  if (class_names is None) == (num_classes is None):
    which = 'both' if class_names is not None else 'neither'
    _fail(f'Pass exactly one of --class_names (e.g. --class_names=background,cat,dog) and '
          f'--num_classes (names class_0, class_1, ...); got {which}.')
  if num_classes is not None:
    if not 1 <= num_classes <= MAX_NUM_CLASSES:
      _fail(f'--num_classes must be in [1, {MAX_NUM_CLASSES}], got {num_classes}.')
    return [f'class_{i}' for i in range(num_classes)]
  class_names = list(class_names)
  for i, name in enumerate(class_names):
    if not name:
      _fail(f'--class_names has an empty name at position {i} of {",".join(class_names)!r}.')
    if name in class_names[:i]:
      _fail(f'--class_names lists {name!r} twice.')
  if len(class_names) > MAX_NUM_CLASSES:
    _fail(f'--class_names lists {len(class_names)} classes; at most {MAX_NUM_CLASSES} fit '
          'in a PNG label map beside the ignore label.')
  return class_names


def check_ignore_label(ignore_label, num_classes):
  """Raises ValueError when `ignore_label` is outside [0, 255] or a class id."""
  if not 0 <= ignore_label <= 255:
    _fail(f'--ignore_label must be in [0, 255], got {ignore_label}.')
  if ignore_label < num_classes:
    _fail(f'--ignore_label={ignore_label} is a class id (there are {num_classes} classes, '
          f'ids 0-{num_classes - 1}): use a value of at least {num_classes}, such as the '
          f'default {constants.IGNORE_LABEL}.')


_HEX_COLOUR = re.compile(r'#?([0-9a-fA-F]{6})')
_TRIPLE_COLOUR = re.compile(r'[\[(]?\s*(\d{1,3})\s*,\s*(\d{1,3})\s*,\s*(\d{1,3})\s*[\])]?')


def parse_colour(key):
  """A `--color_map` colour as (r, g, b).

  Args:
    key: '#ff0000', 'ff0000', '255,0,0' (spaces and brackets allowed) or
      [255, 0, 0].

  Returns:
    The (r, g, b) tuple, or None when `key` is not a colour.
  """
  if isinstance(key, list):
    rgb = key
  elif isinstance(key, str) and _HEX_COLOUR.fullmatch(key.strip()):
    digits = _HEX_COLOUR.fullmatch(key.strip()).group(1)
    rgb = [int(digits[i:i + 2], 16) for i in (0, 2, 4)]
  elif isinstance(key, str) and _TRIPLE_COLOUR.fullmatch(key.strip()):
    rgb = [int(g) for g in _TRIPLE_COLOUR.fullmatch(key.strip()).groups()]
  else:
    return None
  if len(rgb) != 3 or not all(isinstance(x, int) and not isinstance(x, bool) and
                              0 <= x <= 255 for x in rgb):
    return None
  return tuple(rgb)


def colour_name(rgb):
  """'#rrggbb' of an (r, g, b) triple."""
  return '#%02x%02x%02x' % tuple(int(x) for x in rgb)


@dataclasses.dataclass(frozen=True)
class ColorMap:
  """A `--color_map` file read: colour -> class id, for RGB colour masks.

  Attributes:
    path: The JSON file, named in every error about it.
    colours: Dict (r, g, b) -> class id or the ignore label, in file order.
  """
  path: str
  colours: dict

  def lookup_table(self):
    """int16 [2**24] table, packed 0xRRGGBB -> class id, -1 for a colour not in the map."""
    table = np.full(1 << 24, _UNKNOWN_COLOUR, dtype=np.int16)
    for (r, g, b), class_id in self.colours.items():
      table[(r << 16) | (g << 8) | b] = class_id
    return table

  def colormap(self, num_classes):
    """One RGB triple per class: the first colour mapped to it (PASCAL's where none is)."""
    colormap = colormaps.colormap('pascal')[:num_classes].astype(int).tolist()
    seen = set()
    for rgb, class_id in self.colours.items():
      if class_id < num_classes and class_id not in seen:
        colormap[class_id] = list(rgb)
        seen.add(class_id)
    return colormap


def read_color_map(path, class_names, ignore_label):
  """Reads a `--color_map` JSON file.

  Accepted forms: an object mapping colours to classes, e.g.
  `{"#000000": 0, "255,0,0": 1, "#ffffff": 255}` (a class is an id, the
  ignore label, or one of `class_names`), or a list of colours, the i-th
  being class i, e.g. `[[0, 0, 0], [255, 0, 0]]`.

  Args:
    path: The JSON file.
    class_names: The class names (their count bounds the ids).
    ignore_label: The one id allowed beside the classes.

  Returns:
    A `ColorMap`.

  Raises:
    ValueError: A missing or malformed file, or a bad entry; the message
      names the file and the entry.
  """
  if not fileio.isfile(path):
    _fail(f'--color_map={path} does not exist.')
  try:
    with fileio.open_file(path, encoding='utf-8') as f:
      content = json.load(f)
  except (json.JSONDecodeError, UnicodeDecodeError) as e:
    _fail(f'--color_map={path} is not valid JSON: {e}')
  if isinstance(content, list):
    entries = [(colour, class_id) for class_id, colour in enumerate(content)]
  elif isinstance(content, dict):
    entries = list(content.items())
  else:
    entries = None
  if not entries:
    _fail(f'--color_map={path} must be a non-empty JSON object of colour -> class, e.g. '
          '{"#000000": 0, "#ff0000": 1}, or a list of one colour per class.')
  num_classes = len(class_names)
  colours = {}
  for key, value in entries:
    rgb = parse_colour(key)
    class_id = class_names.index(value) if value in class_names else value
    if rgb is None or not isinstance(class_id, int) or isinstance(class_id, bool) or not (
        0 <= class_id < num_classes or class_id == ignore_label):
      _fail(f'--color_map={path}: bad entry {json.dumps(key)}: {json.dumps(value)}; expected '
            f'a "#rrggbb" or "r,g,b" colour mapped to a class id in [0, {num_classes}), a '
            f'class name, or the ignore label {ignore_label}.')
    if colours.get(rgb, class_id) != class_id:
      _fail(f'--color_map={path} maps {colour_name(rgb)} to both {colours[rgb]} and '
            f'{class_id}.')
    colours[rgb] = class_id
  return ColorMap(path, colours)


def _list_folder_files(folder, flag, formats, what):
  """Dict stem -> path of the files of `folder` with one of `formats` (any case)."""
  if not fileio.isdir(folder):
    _fail(f'{flag}={folder} is not a folder.')
  by_stem = {}
  for name in fileio.listdir(folder):
    stem, ext = os.path.splitext(name)
    path = os.path.join(folder, name)
    if name.startswith('.') or ext[1:].lower() not in formats or not fileio.isfile(path):
      continue
    if stem in by_stem:
      _fail(f'{flag}={folder} has two {what}s of stem {stem!r}: '
            f'{os.path.basename(by_stem[stem])} and {name}; keep one.')
    by_stem[stem] = path
  return by_stem


def _other_files(folder, stem):
  """Names of the files of `folder` with stem `stem` (any extension), for hints."""
  return sorted(n for n in fileio.listdir(folder) if os.path.splitext(n)[0] == stem)


def _missing_image_message(stem, image_folder, formats, where):
  others = _other_files(image_folder, stem)
  hint = (f'; found {", ".join(others)}: convert it to PNG or JPEG' if others else '')
  if os.path.splitext(stem)[1][1:].lower() in IMAGE_FORMATS:
    hint = '; list files hold stems, without the extension'
  looked = ', '.join(f'{stem}.{f}' for f in formats)
  return (f'No image for {stem!r}{where} in --image_folder={image_folder} (looked for '
          f'{looked}){hint}')


def _missing_mask_message(stem, image_path, mask_folder, where):
  others = _other_files(mask_folder, stem)
  hint = (f'; found {", ".join(others)}: masks must be PNG (JPEG compression changes class '
          'ids)' if others else '')
  return (f'No mask {stem}.{LABEL_FORMAT} for image {image_path}{where} in '
          f'--semantic_segmentation_folder={mask_folder}{hint}')


def _check_all_found(missing, what):
  """Raises on the first message of `missing`, counting the others."""
  if missing:
    _fail(missing[0].rstrip('.') + _more(len(missing) - 1, what) + '.')


def _splits_from_lists(list_folder, images, masks, image_folder, mask_folder, formats):
  """Dict split -> stems from the `<split>.txt` lists of `list_folder`."""
  if not fileio.isdir(list_folder):
    _fail(f'--list_folder={list_folder} is not a folder.')
  names = voc.available_splits(list_folder)
  if not names:
    _fail(f'--list_folder={list_folder} has no <split>.txt lists (one image stem per line).')
  splits, missing = {}, []
  for split in names:
    list_path = os.path.join(list_folder, split + '.txt')
    stems = voc.read_list(list_path)
    seen = set()
    for stem in stems:
      if stem in seen:
        _fail(f'{list_path} lists {stem!r} twice.')
      seen.add(stem)
      where = f' (listed in {list_path})'
      if stem not in images:
        missing.append(_missing_image_message(stem, image_folder, formats, where))
      elif stem not in masks:
        missing.append(_missing_mask_message(stem, images[stem], mask_folder, where))
    splits[split] = stems
  _check_all_found(missing, 'listed stem(s) without an image or a mask')
  return splits


def _seeded_splits(images, masks, image_folder, mask_folder, formats, val_fraction, seed):
  """Dict 'train' / 'val' -> sorted stems, val a seeded `val_fraction` of them."""
  if not 0 <= val_fraction < 1:
    _fail(f'--val_fraction must be in [0, 1), got {val_fraction}.')
  # Without lists every file must have its partner: a stray one is more
  # likely a naming mistake than an image meant to be left out.
  missing = [_missing_mask_message(s, images[s], mask_folder, '') for s in images
             if s not in masks]
  missing += [_missing_image_message(s, image_folder, formats, f' (mask {masks[s]})')
              for s in masks if s not in images]
  _check_all_found(missing, 'file(s) without their partner')
  stems = sorted(images)
  num_val = int(round(len(stems) * val_fraction))
  if val_fraction > 0:
    num_val = max(1, num_val)
  if num_val >= len(stems):
    _fail(f'--val_fraction={val_fraction} of {len(stems)} image(s) leaves an empty train '
          'split: add images, or use --val_fraction=0 for a train split only.')
  order = np.random.default_rng(seed).permutation(len(stems))
  val = {stems[i] for i in order[:num_val]}
  splits = {TRAIN_SPLIT: [s for s in stems if s not in val]}
  if val:
    splits[VAL_SPLIT] = sorted(val)
  return splits


def find_splits(image_folder, semantic_segmentation_folder, list_folder=None,
                val_fraction=None, seed=0, image_format=None):
  """Pairs images and masks by stem and assigns them to splits.

  Args:
    image_folder: Folder of `<stem>.jpg|jpeg|png` images.
    semantic_segmentation_folder: Folder of `<stem>.png` masks.
    list_folder: Folder of `<split>.txt` lists of stems (every list is a
      split), or None for a seeded train/val split of all pairs.
    val_fraction: Fraction of the pairs drawn for 'val' without lists
      (default 0.1; 0 = train only); an error with `list_folder`.
    seed: Seed of that draw.
    image_format: Only images of this extension, or None for any of
      `IMAGE_FORMATS`.

  Returns:
    (splits: dict split -> list of stems, images: dict stem -> image path,
    masks: dict stem -> mask path).

  Raises:
    ValueError: A missing folder, list, image or mask (named, with the list
      that named it), duplicate stems, or an empty split.
  """
  formats = (image_format,) if image_format else IMAGE_FORMATS
  images = _list_folder_files(image_folder, '--image_folder', formats, 'image')
  if not images:
    _fail(f'--image_folder={image_folder} has no {" or ".join(formats)} images.')
  masks = _list_folder_files(semantic_segmentation_folder, '--semantic_segmentation_folder',
                             (LABEL_FORMAT,), 'mask')
  if list_folder:
    if val_fraction is not None:
      _fail(f'Pass --list_folder or --val_fraction, not both: the lists in '
            f'--list_folder={list_folder} define the splits.')
    splits = _splits_from_lists(list_folder, images, masks, image_folder,
                                semantic_segmentation_folder, formats)
  else:
    splits = _seeded_splits(images, masks, image_folder, semantic_segmentation_folder, formats,
                            DEFAULT_VAL_FRACTION if val_fraction is None else val_fraction,
                            seed)
  return splits, images, masks


@dataclasses.dataclass(frozen=True)
class Pair:
  """What validation learnt about one image and its mask: all the writer needs.

  The mask is kept encoded (its final single-channel PNG), so it is read
  once; the image is read again when written, as keeping thousands of them
  would not fit in memory.
  """
  stem: str
  image_path: str
  image_format: str
  image_mode: str
  height: int
  width: int
  mask_path: str
  label_bytes: bytes
  # Pixels of each class id, and of the ignore label.
  class_counts: np.ndarray
  ignore_count: int
  # The mask's palette ([n, 3] uint8, n <= 256) for palette PNGs, else None.
  palette: np.ndarray | None


def _decode_mask(path):
  """(file bytes, loaded PIL image) of a mask, the file named in every error."""
  # image_io's opener names the file in its errors; it has no public twin.
  data, image = image_io._open(path, 'Mask')  # pylint: disable=protected-access
  if image.format != 'PNG':
    _fail(f'Mask file {path} is {image.format}, not PNG: save masks as PNG (JPEG '
          'compression changes class ids).')
  return data, image


def _colour_mask_to_classes(path, rgb, color_map, table):
  """Class ids of an RGB mask through the colour map; an error naming unknown colours."""
  packed = ((rgb[..., 0].astype(np.int32) << 16) | (rgb[..., 1].astype(np.int32) << 8) |
            rgb[..., 2])
  label = table[packed]
  unknown = label == _UNKNOWN_COLOUR
  if unknown.any():
    colours = np.unique(packed[unknown])
    shown = ', '.join(colour_name(((c >> 16) & 255, (c >> 8) & 255, c & 255))
                      for c in colours[:_SHOWN])
    more = f' and {len(colours) - _SHOWN} more' if len(colours) > _SHOWN else ''
    _fail(f'Mask {path} has {len(colours)} colour(s) not in --color_map={color_map.path}: '
          f'{shown}{more}; add them to the map (as a class id or the ignore label).')
  return label


def _read_mask(path, color_map, table):
  """(label array [H, W] of ids, bytes to store or None, palette or None) of a mask."""
  data, image = _decode_mask(path)
  mode = image.mode
  if mode in ('RGB', 'RGBA'):
    rgb = np.asarray(image)[..., :3]
    if color_map is None:
      grey = (' (its channels are equal: if they hold class ids, save it as a single-channel '
              'PNG)' if np.array_equal(rgb[..., 0], rgb[..., 1]) and
              np.array_equal(rgb[..., 0], rgb[..., 2]) else '')
      _fail(f'Mask {path} is an {mode} colour mask: pass --color_map=FILE.json mapping each '
            'colour to a class id, e.g. {"#000000": 0, "#ff0000": 1}, or save the masks as '
            f'single-channel PNGs of class ids{grey}.')
    return _colour_mask_to_classes(path, rgb, color_map, table), None, None
  if mode == 'P':
    palette = np.asarray(image.getpalette() or [], np.uint8).reshape(-1, 3)[:256]
    return np.asarray(image), None, palette
  if mode in ('L', 'LA', '1'):
    label = np.asarray(image.getchannel(0), dtype=np.uint8)
    # An 8-bit grayscale PNG decodes to the same ids in TensorFlow: stored as is.
    stored = data if mode == 'L' and data[24:26] == _PNG_8BIT_GRAY else None
    return label, stored, None
  if mode.startswith('I'):
    return np.asarray(image), None, None
  _fail(f'Mask {path} has mode {mode}; expected a single-channel PNG of class ids, a '
        'palette PNG or an RGB colour mask.')


def _bad_values_hint(values, num_classes, ignore_label):
  """The likely cause of mask values that are neither a class nor the ignore label."""
  present = set(int(v) for v in values)
  if present <= {0, 255} and ignore_label != 255:
    return ('a 0/255 binary mask? use --num_classes=2 and save the foreground as 1, not 255 '
            '(or --ignore_label=255 if 255 marks pixels to ignore)')
  classes = present - {ignore_label}
  if 0 not in present and classes and max(classes) == num_classes:
    return (f'classes numbered from 1? ids start at 0: subtract 1 in the masks, or add a '
            f'class for 0 (--num_classes={num_classes + 1})')
  if len(classes) > num_classes + 1:
    return ('grey levels of a colour mask saved as grayscale (mode L)? save class ids, or '
            'keep the colour masks RGB and pass --color_map')
  return (f'check --num_classes / --class_names ({num_classes} classes) and '
          f'--ignore_label={ignore_label}')


def _value_counts(label):
  """(sorted values, pixel counts) of a label array."""
  if label.dtype == np.uint8:
    counts = np.bincount(label.ravel(), minlength=256)
    values = np.flatnonzero(counts)
    return values, counts[values]
  return np.unique(label, return_counts=True)


def read_pair(stem, image_path, mask_path, num_classes, ignore_label, color_map=None,
              table=None):
  """Reads and checks one image and its mask.

  Args:
    stem: The stem both files share (stored as `image/filename`).
    image_path: The image file.
    mask_path: The mask file.
    num_classes: Valid ids are [0, num_classes).
    ignore_label: The one other allowed mask value.
    color_map: A `ColorMap` for RGB colour masks, or None.
    table: `color_map.lookup_table()`, built once by the caller.

  Returns:
    A `Pair`.

  Raises:
    ValueError: An unreadable file, a size mismatch, mask values that are
      neither a class id nor the ignore label, an RGB mask without a colour
      map or with colours not in it; the message names the file.
  """
  _, image_format, height, width = image_io.read_image(image_path)
  with fileio.open_file(image_path, 'rb') as f, Image.open(f) as image:
    image_mode = image.mode  # The header only: read_image decoded it already.
  label, stored, palette = _read_mask(mask_path, color_map, table)
  image_io.check_same_size(image_path, (height, width), mask_path, label.shape)
  values, counts = _value_counts(label)
  bad = values[((values < 0) | (values >= num_classes)) & (values != ignore_label)]
  if bad.size:
    _fail(f'Mask {mask_path} has values {_listing(bad)} that are neither a class id '
          f'(0-{num_classes - 1}) nor the ignore label {ignore_label} (values in the mask: '
          f'{_listing(values, 12)}): {_bad_values_hint(values, num_classes, ignore_label)}')
  class_counts = np.zeros(num_classes, np.int64)
  in_class = values < num_classes
  class_counts[values[in_class]] = counts[in_class]
  if stored is None:
    stored = image_io.encode_png(label.astype(np.uint8))
  return Pair(stem, image_path, image_format, image_mode, height, width, mask_path, stored,
              class_counts, int(counts[~in_class].sum()), palette)


def _read_all(stems, images, masks, num_classes, ignore_label, color_map):
  """Dict stem -> `Pair`, read in parallel; raises on the first bad file (in stem order)."""
  table = color_map.lookup_table() if color_map else None

  def read(stem):
    try:
      return read_pair(stem, images[stem], masks[stem], num_classes, ignore_label, color_map,
                       table)
    except (ValueError, FileNotFoundError) as e:
      return e

  pairs, errors = {}, []
  # PIL and numpy release the GIL while decoding, so threads read files in parallel.
  with concurrent.futures.ThreadPoolExecutor(min(8, os.cpu_count() or 1)) as pool:
    for i, result in enumerate(pool.map(read, stems)):
      if isinstance(result, Exception):
        errors.append(result)
      else:
        pairs[result.stem] = result
      if (i + 1) % _PROGRESS_EVERY == 0:
        logging.info('Checked %d of %d image/mask pairs', i + 1, len(stems))
  if errors:
    _fail(str(errors[0]).rstrip('.') + _more(len(errors) - 1, 'file(s) with problems') + '.')
  return pairs


def _warn_conversions(pairs):
  """Names the images stored converted to RGB (the first few, then a count)."""
  converted = [p for p in pairs if p.image_mode != 'RGB']
  for pair in converted[:_NAMED_WARNINGS]:
    logging.warning('Image %s is %s, not RGB: storing it converted to RGB (as PNG)',
                    pair.image_path, pair.image_mode)
  if len(converted) > _NAMED_WARNINGS:
    logging.warning('%d more images converted to RGB', len(converted) - _NAMED_WARNINGS)


def _check_not_binary(pairs, num_classes, ignore_label):
  """Raises when no mask has a class but 0 while ignore pixels abound: 0/255 masks."""
  total = sum(p.class_counts for p in pairs)
  if num_classes >= 2 and not total[1:].any() and any(p.ignore_count for p in pairs):
    _fail(f'No mask has a pixel of classes 1-{num_classes - 1}: every mask holds only 0 and '
          f'the ignore label {ignore_label}. 0/255 binary masks? save the foreground as 1, '
          f'not {ignore_label}, and use --num_classes=2.')


def _palette_colormap(pairs, num_classes):
  """The first palette mask's first `num_classes` colours, or None without palette masks.

  Classes beyond a short palette get their PASCAL colours.
  """
  palettes = [p for p in pairs if p.palette is not None]
  if not palettes:
    return None
  first = palettes[0]
  for other in palettes[1:]:
    if not np.array_equal(other.palette[:num_classes], first.palette[:num_classes]):
      logging.warning('Palette masks %s and %s have different palettes; the colormap is the '
                      'first one\'s', first.mask_path, other.mask_path)
      break
  colormap = colormaps.colormap('pascal')[:num_classes].copy()
  colours = first.palette[:num_classes]
  colormap[:len(colours)] = colours
  return colormap.astype(int).tolist()


def _to_example(pair):
  """The serialized example of a checked `Pair`."""
  if pair.image_mode == 'RGB':
    with fileio.open_file(pair.image_path, 'rb') as f:
      image_bytes, image_format = f.read(), pair.image_format
  else:
    with fileio.open_file(pair.image_path, 'rb') as f, Image.open(f) as image:
      image_bytes = image_io.encode_png(np.asarray(image.convert('RGB')))
    image_format = 'png'
  return tfrecord.encode_example(image_bytes, pair.label_bytes, pair.stem, pair.height,
                                 pair.width, image_format)


def build(output_dir, image_folder, semantic_segmentation_folder, *, list_folder=None,
          val_fraction=None, seed=0, class_names=None, num_classes=None,
          ignore_label=constants.IGNORE_LABEL, color_map=None,
          num_shards=DEFAULT_NUM_SHARDS, dataset_name=dataset_info.CUSTOM_DATASET,
          image_format=None, label_format=LABEL_FORMAT):
  """Checks a folder of images and masks, then writes its TFRecords and dataset_info.json.

  Args:
    output_dir: Folder for the shards and `dataset_info.json`.
    image_folder: Folder of `<stem>.jpg|jpeg|png` images.
    semantic_segmentation_folder: Folder of `<stem>.png` masks.
    list_folder: Folder of `<split>.txt` stem lists, or None for a seeded
      train/val split.
    val_fraction: Without `list_folder`: fraction drawn for 'val' (None:
      0.1; 0: train only).
    seed: Seed of the train/val draw.
    class_names: Comma-separated or listed class names; or give
      `num_classes`.
    num_classes: Number of classes (named class_0, ...); or give
      `class_names`.
    ignore_label: Mask value of pixels without a class.
    color_map: Path of a JSON colour -> class map, for RGB colour masks.
    num_shards: Shards per split.
    dataset_name: The `name` field of `dataset_info.json`.
    image_format: Only images of this extension (None: jpg, jpeg and png).
    label_format: Mask extension; only 'png'.

  Returns:
    The `dataset_info.json` content written.

  Raises:
    ValueError: Any problem with the flags or the files, found before
      anything is written; one line naming the file at fault.
  """
  for flag, value in (('--image_folder', image_folder),
                      ('--semantic_segmentation_folder', semantic_segmentation_folder),
                      ('--output_dir', output_dir)):
    if not value:
      _fail(f'{flag} is required.')
  if label_format != LABEL_FORMAT:
    _fail(f'--label_format must be {LABEL_FORMAT}, got {label_format!r}.')
  if image_format is not None and image_format not in IMAGE_FORMATS:
    _fail(f'--image_format must be one of {", ".join(IMAGE_FORMATS)}, got {image_format!r}.')
  if num_shards < 1:
    _fail(f'--num_shards must be at least 1, got {num_shards}.')
  if not dataset_name:
    _fail('--dataset_name must not be empty.')
  names = resolve_class_names(class_names, num_classes)
  check_ignore_label(ignore_label, len(names))
  colours = read_color_map(color_map, names, ignore_label) if color_map else None
  splits, images, masks = find_splits(image_folder, semantic_segmentation_folder, list_folder,
                                      val_fraction, seed, image_format)
  stems = sorted({s for split_stems in splits.values() for s in split_stems})
  pairs = _read_all(stems, images, masks, len(names), ignore_label, colours)
  _check_not_binary(pairs.values(), len(names), ignore_label)
  colormap = (colours.colormap(len(names)) if colours else
              _palette_colormap([pairs[s] for s in stems], len(names)))
  fields = dict(
      name=dataset_name, class_names=names, ignore_label=ignore_label,
      splits_to_sizes={split: len(s) for split, s in splits.items()}, colormap=colormap,
      class_pixel_counts={split: sum(pairs[x].class_counts for x in s).tolist()
                          for split, s in splits.items()})
  # Checked now, so that a bad field cannot fail the build after the shards.
  info = dataset_info.make_dataset_info(**fields)
  _warn_conversions([pairs[s] for s in stems])

  # An info file of an earlier build would describe a half-rebuilt folder if
  # this build were killed; without one, readers refuse the folder.
  stale_info = dataset_info.info_path(output_dir)
  if fileio.exists(stale_info):
    fileio.remove(stale_info)
  for split, split_stems in splits.items():
    shard_writer.write_split(output_dir, split, [pairs[s] for s in split_stems], _to_example,
                             num_shards)
    logging.info('Wrote %d examples of split %s to %s', len(split_stems), split, output_dir)
  dataset_info.write_dataset_info(output_dir, **fields)
  return info
