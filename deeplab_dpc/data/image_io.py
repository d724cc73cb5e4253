"""Reading, checking and encoding the image and label files the builders convert.

Builders use PIL rather than TensorFlow here: it is fast for single files,
its PNG encoder is deterministic (a re-run writes the same bytes), and
palette PNGs read as their class indices, which is what the original
`remove_gt_colormap.py` extracted.
"""

import io
import os

import numpy as np
from PIL import Image

from deeplab_dpc import fileio

_FORMAT_BY_PIL = {'PNG': 'png', 'JPEG': 'jpeg'}


def _open(path, what, listed_in=None):
  """Opens and fully decodes an image file, naming it in every error."""
  if not fileio.isfile(path):
    where = f' (listed in {listed_in})' if listed_in else ''
    raise FileNotFoundError(f'{what} file {path}{where} does not exist.')
  with fileio.open_file(path, 'rb') as f:
    data = f.read()
  try:
    image = Image.open(io.BytesIO(data))
    image.load()
  except (OSError, SyntaxError, ValueError) as e:
    raise ValueError(f'{what} file {path} is corrupt or not an image: {e}') from None
  return data, image


def read_image(path, listed_in=None):
  """Reads an image file and checks that it decodes.

  Args:
    path: PNG or JPEG file.
    listed_in: List file that named `path`, for error messages.

  Returns:
    (encoded bytes, format ('png' or 'jpeg'), height, width).

  Raises:
    FileNotFoundError: If the file does not exist.
    ValueError: If it is corrupt or neither PNG nor JPEG.
  """
  data, image = _open(path, 'Image', listed_in)
  if image.format not in _FORMAT_BY_PIL:
    raise ValueError(f'Image file {path} is {image.format}; expected PNG or JPEG.')
  if image.mode not in ('RGB', 'L', 'P', 'RGBA', 'LA', 'CMYK'):
    raise ValueError(f'Image file {path} has unsupported mode {image.mode}.')
  return data, _FORMAT_BY_PIL[image.format], image.height, image.width


def read_label(path, listed_in=None):
  """Reads a label map of class ids.

  Palette PNGs (PASCAL's `SegmentationClass`) give their palette indices;
  grayscale PNGs give their values.

  Args:
    path: Label PNG file.
    listed_in: List file that named `path`, for error messages.

  Returns:
    (encoded bytes, uint8 numpy array [H, W], whether the bytes can be
    stored unchanged: True for an 8-bit grayscale PNG).

  Raises:
    FileNotFoundError: If the file does not exist.
    ValueError: If it is corrupt or not a single-channel label map.
  """
  data, image = _open(path, 'Label', listed_in)
  if image.mode in ('L', 'P'):
    array = np.asarray(image, dtype=np.uint8)
  elif image.mode in ('I', 'I;16', 'I;16B'):
    array = np.asarray(image)
    if array.size and array.max() > 255:
      raise ValueError(f'Label file {path} has values above 255 (max {array.max()}).')
    array = array.astype(np.uint8)
  else:
    raise ValueError(f'Label file {path} has mode {image.mode}; expected a single-channel '
                     '(grayscale or palette) PNG of class ids.')
  storable = image.format == 'PNG' and image.mode == 'L'
  return data, array, storable


def encode_png(array):
  """Encodes a uint8 array ([H, W] or [H, W, 3]) as PNG bytes, deterministically."""
  array = np.asarray(array)
  if array.dtype != np.uint8:
    raise ValueError(f'Expected uint8 data to encode as PNG, got {array.dtype}.')
  buffer = io.BytesIO()
  Image.fromarray(array).save(buffer, format='PNG')
  return buffer.getvalue()


def write_png(path, array):
  """Writes a uint8 array as a PNG file, atomically (a kill never leaves half a file)."""
  fileio.atomic_write(path, encode_png(np.ascontiguousarray(array, np.uint8)))


def check_same_size(image_path, image_hw, label_path, label_hw):
  """Raises ValueError naming both files when image and label sizes differ."""
  if tuple(image_hw) != tuple(label_hw):
    raise ValueError(f'Label {label_path} is {label_hw[0]}x{label_hw[1]} but its image '
                     f'{image_path} is {image_hw[0]}x{image_hw[1]} (height x width).')


def check_label_values(label_path, label, num_classes, ignore_label):
  """Raises ValueError naming the file when a label value is not a class id nor ignore.

  Args:
    label_path: File name for the message.
    label: Integer array of class ids.
    num_classes: Valid ids are [0, num_classes).
    ignore_label: The one other allowed value.
  """
  values = np.unique(label)
  bad = values[(values >= num_classes) & (values != ignore_label)]
  if bad.size:
    raise ValueError(f'Label {label_path} has values {bad[:10].tolist()} outside '
                     f'[0, {num_classes}) that are not the ignore label {ignore_label}.')
