"""Segmenting image files with an exported SavedModel, writing coloured PNGs.

Every mistake a user can make here ends as a `ValueError` / `FileNotFoundError`
naming the flag and the file: a folder that is not a SavedModel, an output
folder that is a file, an image the decoder cannot read or whose depth has no
8-bit meaning, an image larger than what the export serves.
"""

import json
import os
import re
import warnings

import numpy as np
from PIL import Image

from deeplab_dpc import fileio
from deeplab_dpc.data import colormaps
from deeplab_dpc.data import descriptors
from deeplab_dpc.data import image_io

OPTIONS_ASSET = 'deeplab_options.json'  # serving.OPTIONS_ASSET, without importing TF.

# Modes holding 16 bits per pixel: scaled to 8 bits by dropping the low byte,
# as tf.image.convert_image_dtype (and so the input pipeline) does.
_16_BIT_MODES = ('I;16', 'I;16L', 'I;16B', 'I;16N')
# Formats whose 32-bit integer mode ('I') holds at most 16-bit samples.
_16_BIT_AS_I_FORMATS = ('PNG', 'PPM')


def _to_rgb(image: Image.Image, path: str) -> np.ndarray:
  """uint8 [H, W, 3] of an opened image, whatever its mode; ValueError naming the file."""
  mode = image.mode
  if mode in _16_BIT_MODES or (mode == 'I' and image.format in _16_BIT_AS_I_FORMATS):
    values = np.asarray(image).astype(np.int64)
    if values.min() < 0 or values.max() > 65535:
      raise ValueError(f'--image: {path} is a 16-bit image with values outside [0, 65535]')
    gray = (values >> 8).astype(np.uint8)
    return np.repeat(gray[..., None], 3, axis=-1)
  if mode == 'I':
    raise ValueError(f'--image: {path} is a 32-bit integer image (mode I); segment.py reads '
                     '8- and 16-bit images: convert it to 8-bit RGB')
  if mode == 'F':
    raise ValueError(f'--image: {path} is a 32-bit floating-point image (mode F); '
                     'segment.py reads 8- and 16-bit images: convert it to 8-bit RGB')
  if mode == 'P' and 'transparency' in image.info:
    # Through RGBA, as Pillow recommends for palettes with transparency; the
    # colours are the same and the alpha is dropped below, as the input
    # pipeline's decode_image(channels=3) drops it.
    image = image.convert('RGBA')
  try:
    rgb = image.convert('RGB')
  except ValueError as e:
    raise ValueError(f'--image: {path} has mode {mode}, which has no RGB conversion ({e})'
                     ) from None
  return np.asarray(rgb, np.uint8)


def _read(path: str, decode: bool):
  """uint8 [H, W, 3] (decode) or (height, width) of an image file; errors name the file."""
  if not fileio.isfile(path):
    raise FileNotFoundError(f'--image: no such file: {path}')
  try:
    with warnings.catch_warnings():
      # Too many pixels is an error below, not a warning on stderr.
      warnings.simplefilter('error', Image.DecompressionBombWarning)
      with fileio.open_file(path, 'rb') as f, Image.open(f) as image:
        if not decode:
          return image.size[::-1]
        image.load()
        return _to_rgb(image, path)
  except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
    raise ValueError(f'--image: {path} is too large to decode safely ({e})') from None
  except (OSError, SyntaxError) as e:
    raise ValueError(f'--image: {path} is not a readable image ({e})') from None


def read_rgb(path: str) -> np.ndarray:
  """An image file as uint8 [H, W, 3]; errors name the file.

  16-bit images (PNG, TIFF, PGM) keep their high byte, so a 16-bit image gives
  what the same image at 8 bits gives; alpha is dropped; palette, CMYK, gray
  and bilevel images are converted to RGB. 32-bit and floating-point images
  are refused.

  Raises:
    FileNotFoundError: No such file.
    ValueError: Not an image, or a depth with no 8-bit meaning.
  """
  return _read(path, decode=True)


def image_size(path: str) -> tuple[int, int]:
  """(height, width) of an image file from its header; errors as `read_rgb`."""
  return tuple(_read(path, decode=False))


def read_export_options(saved_model_dir: str) -> dict | None:
  """The export's `assets/deeplab_options.json`, or None when the export has none."""
  path = os.path.join(saved_model_dir, 'assets', OPTIONS_ASSET)
  if not fileio.isfile(path):
    return None
  try:
    with fileio.open_file(path, encoding='utf-8') as f:
      return json.load(f)
  except (OSError, ValueError) as e:
    raise ValueError(f'--saved_model: {path} is not readable JSON ({e})') from None


# The colormap of the original's default dataset (pascal_voc_seg, export.py's 21 classes).
DEFAULT_COLORMAP = 'pascal'


def export_colormap(export_options: dict | None):
  """The colours segment.py draws an export's classes in.

  Args:
    export_options: The export's `assets/deeplab_options.json`, or None.

  Returns:
    The colours export.py recorded for its --dataset or custom --dataset_dir
    ([N, 3]); for an export without a dataset, the colormap name of the one
    built-in dataset with its class count (19: cityscapes, 21: pascal, 7:
    person_part, 6: demo), else `DEFAULT_COLORMAP`.
  """
  export_options = export_options or {}
  colors = (export_options.get('dataset') or {}).get('colormap')
  if colors:
    return np.asarray(colors, dtype=np.int64)
  num_classes = (export_options.get('model_options') or {}).get('num_classes')
  names = {descriptor.colormap_name for descriptor in descriptors.BUILT_IN_DESCRIPTORS
           if descriptor.num_classes == num_classes}
  return names.pop() if len(names) == 1 else DEFAULT_COLORMAP


def check_saved_model_dir(saved_model_dir: str) -> None:
  """Raises naming `--saved_model` when the folder is not a SavedModel."""
  if not fileio.exists(saved_model_dir):
    raise FileNotFoundError(f'--saved_model: no SavedModel directory {saved_model_dir}')
  if not fileio.isdir(saved_model_dir):
    raise ValueError(f'--saved_model={saved_model_dir} is a file, not a SavedModel folder')
  if not any(fileio.isfile(os.path.join(saved_model_dir, name))
             for name in ('saved_model.pb', 'saved_model.pbtxt')):
    raise ValueError(f'--saved_model={saved_model_dir} is not a SavedModel folder (no '
                     'saved_model.pb): pass the --export_path of export.py')


def check_output_dir(output_dir: str) -> None:
  """Raises naming `--output_dir` when it (or a folder above it) is a file."""
  path = fileio.abspath(output_dir)
  while not fileio.exists(path):
    path = os.path.dirname(path)
  if fileio.isdir(path):
    return
  if path == fileio.abspath(output_dir):
    raise ValueError(f'--output_dir={output_dir} is a file, not a folder')
  raise ValueError(f'--output_dir={output_dir}: {path} is a file, not a folder')


def check_fits_export(path: str, size, export_options: dict | None) -> None:
  """Raises when an image is larger than an export without resizing can serve.

  Args:
    path: The image file, for the message.
    size: (height, width) of the image.
    export_options: `read_export_options`; None skips the check.
  """
  if not export_options or export_options.get('min_resize_value'):
    return
  crop = (export_options.get('model_options') or {}).get('crop_size')
  if not crop:
    return
  crop_h, crop_w = crop
  height, width = size
  if height <= crop_h and width <= crop_w:
    return
  raise ValueError(
      f'--image: {path} is {height}x{width} (height x width), larger than the export\'s '
      f'crop {crop_h}x{crop_w}; export with --min_resize_value={min(crop_h, crop_w)} '
      f'--max_resize_value={min(crop_h, crop_w)} to serve images of any size, or with '
      f'--crop_size={max(height, crop_h)},{max(width, crop_w)}')


def _output_stems(image_paths) -> list[str]:
  stems, seen = [], {}
  for path in image_paths:
    stem = os.path.splitext(os.path.basename(path))[0]
    if stem in seen:
      raise ValueError(f'--image: {seen[stem]} and {path} would both be written as '
                       f'{stem}_prediction.png; rename one')
    seen[stem] = path
    stems.append(stem)
  return stems


# A failed tf.debugging assertion: its message, then the values compared.
_ASSERTION = re.compile(r'assertion failed: \[([^\]]*)\](?:.*?\[x [^\]]*\] \[(-?\d+)\])?',
                        re.DOTALL)


def _assertion(message: str) -> str:
  """What a graph error says failed: the graph's own assertion and its value."""
  match = _ASSERTION.search(message)
  if match:
    value = f' (it is {match.group(2)})' if match.group(2) else ''
    return match.group(1) + value
  lines = [line.strip() for line in message.splitlines() if line.strip()]
  return lines[-1] if lines else message


def segment_images(saved_model_dir: str, image_paths, output_dir: str,
                   colormap: str | None = None) -> list[str]:
  """Runs `serving_default` on each image; writes `<name>_prediction.png` (coloured).

  `colormap` None: the colours of the export's dataset (`export_colormap`).

  Also writes `<name>_labels.png` (raw class ids) beside it. The arguments and
  every image's header and size are checked before the first prediction is
  written.

  Returns:
    The paths of the coloured predictions.

  Raises:
    FileNotFoundError / ValueError: Naming the flag and the file at fault.
  """
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  check_saved_model_dir(saved_model_dir)
  check_output_dir(output_dir)
  stems = _output_stems(image_paths)
  export_options = read_export_options(saved_model_dir)
  for path in image_paths:
    check_fits_export(path, image_size(path), export_options)
  if colormap is None:
    colormap = export_colormap(export_options)
  try:
    loaded = tf.saved_model.load(saved_model_dir)
  except Exception as e:  # pylint: disable=broad-except
    # Whatever the loader raises for a damaged export (protobuf, TF, OS errors).
    raise ValueError(f'--saved_model={saved_model_dir} is not a readable SavedModel '
                     f'({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ""})'
                     ) from None
  if 'serving_default' not in loaded.signatures:
    raise ValueError(f'--saved_model={saved_model_dir} has no serving_default signature '
                     f'(it has {sorted(loaded.signatures)}): export it with export.py')
  serve = loaded.signatures['serving_default']
  written = []
  for path, stem in zip(image_paths, stems):
    image = read_rgb(path)
    try:
      labels = serve(image=tf.constant(image[None]))['semantic_predictions'].numpy()[0]
    except tf.errors.InvalidArgumentError as e:
      raise ValueError(f'--image: {path} ({image.shape[0]}x{image.shape[1]}) cannot be '
                       f'served by {saved_model_dir}: {_assertion(e.message)}') from None
    coloured = os.path.join(output_dir, f'{stem}_prediction.png')
    image_io.write_png(coloured, colormaps.colorize(labels.astype(np.uint8), colormap))
    image_io.write_png(os.path.join(output_dir, f'{stem}_labels.png'), labels.astype(np.uint8))
    written.append(coloured)
  return written
