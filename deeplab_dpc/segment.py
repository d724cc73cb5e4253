"""Segmenting image files with an exported SavedModel, writing coloured PNGs."""

import os

import numpy as np
from PIL import Image

from deeplab_dpc.data import colormaps
from deeplab_dpc.data import image_io


def read_rgb(path: str) -> np.ndarray:
  """An image file as uint8 [H, W, 3]; errors name the file."""
  if not os.path.isfile(path):
    raise FileNotFoundError(f'--image: no such file: {path}')
  try:
    with Image.open(path) as image:
      return np.asarray(image.convert('RGB'))
  except (OSError, SyntaxError, ValueError) as e:
    raise ValueError(f'--image: {path} is not a readable image ({e})') from None


def segment_images(saved_model_dir: str, image_paths, output_dir: str,
                   colormap: str = 'cityscapes') -> list[str]:
  """Runs `serving_default` on each image; writes `<name>_prediction.png` (coloured).

  Also writes `<name>_labels.png` (raw class ids) beside it.

  Returns:
    The paths of the coloured predictions.
  """
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  if not os.path.isdir(saved_model_dir):
    raise FileNotFoundError(f'--saved_model: no SavedModel directory {saved_model_dir}')
  serve = tf.saved_model.load(saved_model_dir).signatures['serving_default']
  written = []
  for path in image_paths:
    image = read_rgb(path)
    labels = serve(image=tf.constant(image[None]))['semantic_predictions'].numpy()[0]
    stem = os.path.splitext(os.path.basename(path))[0]
    coloured = os.path.join(output_dir, f'{stem}_prediction.png')
    image_io.write_png(coloured, colormaps.colorize(labels.astype(np.uint8), colormap))
    image_io.write_png(os.path.join(output_dir, f'{stem}_labels.png'), labels.astype(np.uint8))
    written.append(coloured)
  return written
