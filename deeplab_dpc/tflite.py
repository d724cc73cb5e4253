"""TFLite export at a fixed input size, float or quantized, and a reference client.

The .tflite file has one signature, `serving_default`:

* input `image`: float32 [1, crop_height, crop_width, 3], RGB pixel values in
  [0, 255] (not normalised: the model subtracts its own mean and scales);
* output `semantic_predictions`: int32 [1, crop_height, crop_width], the argmax
  of the logits upsampled to the crop size (aligned corners, as the original);
* output `logits` (only with `with_logits=True`): float32 [1, crop_height,
  crop_width, classes].

The input stays float32 for every quantization (full-integer models quantize it
in their first op), so one client serves every variant.

Pre-processing (the client's job; `TFLiteSegmenter` does it): an image of at
most the crop size is padded bottom/right with the mean pixel 127.5 to the crop
size; a larger one must first be resized keeping its aspect ratio so that it
fits (`preprocess.resize_to_range`, as the SavedModel's `--min_resize_value`
mode). Post-processing: crop the predictions to the (resized) image's size and,
if the image was resized, resize them back with nearest neighbour.

Converting goes through a SavedModel written by `keras.export.ExportArchive`:
a Keras 3 model wrapped in a plain `tf.Module` whose variables the module does
not track converts to a .tflite that outputs NaN; the archive tracks them.
"""

import os
import tempfile
import warnings
from typing import Callable, Iterable

import keras
import numpy as np
import tensorflow as tf

from deeplab_dpc import constants
from deeplab_dpc import fileio
from deeplab_dpc import model as model_lib
from deeplab_dpc import serving

QUANTIZATIONS = (None, 'dynamic_range', 'full_integer')
SIGNATURE = 'serving_default'


def tflite_function(model: model_lib.DeepLabModel, inference_scales=(1.0,),
                    add_flipped_images=False, with_logits=False):
  """The fixed-size tf.function that becomes the .tflite's `serving_default`.

  Args:
    model: A built `DeepLabModel`.
    inference_scales: Image pyramid.
    add_flipped_images: Add left-right flipped passes.
    with_logits: Also return `logits`.

  Returns:
    A `tf.function` over float32 [1, crop_height, crop_width, 3].
  """
  crop_h, crop_w = model.options.crop_size
  scales = tuple(float(s) for s in inference_scales)

  @tf.function(input_signature=[tf.TensorSpec([1, crop_h, crop_w, 3], tf.float32,
                                              name='image')])
  def serve(image):
    outputs = model_lib.predict(model, image, scales, add_flipped_images)
    result = {'semantic_predictions': outputs['semantic_predictions']}
    if with_logits:
      result['logits'] = outputs['logits']
    return result

  return serve


def _representative_dataset(representative_images, crop_size):
  """A converter `representative_dataset` callable; checks every image's shape."""
  crop_h, crop_w = crop_size

  def generate():
    images = representative_images() if callable(representative_images) else \
        representative_images
    count = 0
    for image in images:
      image = np.asarray(image, np.float32)
      if image.ndim == 3:
        image = image[None]
      if image.shape != (1, crop_h, crop_w, 3):
        raise ValueError(f'representative_images: expected images of shape [{crop_h}, '
                         f'{crop_w}, 3] (padded to the crop size), got {image.shape}')
      count += 1
      yield [image]
    if not count:
      raise ValueError('representative_images is empty')

  return generate


def convert_all(model: model_lib.DeepLabModel, quantizations=(None,),
                representative_images=None, *, inference_scales=(1.0,),
                add_flipped_images=False, with_logits=False) -> dict:
  """Converts a model to TFLite flatbuffers, one per quantization.

  The model is traced and written once (the slow part); each quantization is
  one converter run on that SavedModel.

  Args:
    model: A built `DeepLabModel` holding the weights.
    quantizations: Each None (float32), 'dynamic_range' (int8 weights, float
      activations) or 'full_integer' (int8 weights and activations, calibrated
      on `representative_images`; float32 input and logits, int32 predictions).
    representative_images: For 'full_integer': an iterable (or a callable
      returning one, needed when it must be read more than once) of float32
      images [crop_h, crop_w, 3] or [1, crop_h, crop_w, 3] in [0, 255],
      preprocessed as at inference (padded with the mean). A few dozen to a
      hundred images from the training split suffice.
    inference_scales: Image pyramid baked into the graph.
    add_flipped_images: Add flipped passes.
    with_logits: Also output `logits`.

  Returns:
    {quantization: .tflite bytes}.

  Raises:
    ValueError: Unknown quantization, or full-integer without (valid) images.
  """
  for quantization in quantizations:
    if quantization not in QUANTIZATIONS:
      raise ValueError('--quantization must be one of none, dynamic_range, full_integer; '
                       f'got {quantization!r}')
  representative_dataset = None
  if 'full_integer' in quantizations:
    if representative_images is None:
      raise ValueError('--quantization=full_integer needs representative images '
                       '(--dataset_dir)')
    representative_dataset = _representative_dataset(representative_images,
                                                     model.options.crop_size)
    if isinstance(representative_images, (list, tuple)):
      for _ in representative_dataset():  # Fail before the slow part.
        pass
  serve = tflite_function(model, inference_scales, add_flipped_images, with_logits)
  results = {}
  with tempfile.TemporaryDirectory(prefix='deeplab-tflite-') as saved_model_dir:
    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint(SIGNATURE, serve)
    archive.write_out(saved_model_dir, verbose=False)
    for quantization in quantizations:
      converter = tf.lite.TFLiteConverter.from_saved_model(saved_model_dir,
                                                           signature_keys=[SIGNATURE])
      if quantization:
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
      if quantization == 'full_integer':
        converter.representative_dataset = representative_dataset
        # Only int8 kernels: conversion fails rather than silently leaving an op
        # in float. Input and logits stay float32 (quantize/dequantize at the
        # edges) so every variant has the same interface.
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
      results[quantization] = converter.convert()
  return results


def convert(model: model_lib.DeepLabModel, quantization=None, representative_images=None, *,
            inference_scales=(1.0,), add_flipped_images=False, with_logits=False) -> bytes:
  """The .tflite bytes of a model for one quantization (see `convert_all`)."""
  return convert_all(model, (quantization,), representative_images,
                     inference_scales=inference_scales,
                     add_flipped_images=add_flipped_images, with_logits=with_logits)[quantization]


def export_tflite(model: model_lib.DeepLabModel, path: str, quantization=None,
                  representative_images=None, *, inference_scales=(1.0,),
                  add_flipped_images=False, with_logits=False) -> str:
  """Writes a .tflite file of a model atomically (see `convert` for the arguments).

  Returns:
    path.
  """
  content = convert(model, quantization, representative_images,
                    inference_scales=inference_scales, add_flipped_images=add_flipped_images,
                    with_logits=with_logits)
  fileio.atomic_write(path, content)
  return path


def representative_images_from_dataset(dataset_name: str, dataset_dir: str, split: str,
                                       crop_size, num_images: int, min_resize_value=None,
                                       max_resize_value=None,
                                       resize_factor=None) -> Callable[[], Iterable]:
  """Calibration images from a split, preprocessed as at evaluation.

  Returns:
    A callable returning an iterator of float32 [1, crop_h, crop_w, 3] arrays
    (the first `num_images` images of the split, padded with the mean).
  """
  # Imported here so that the converter and the client do not need the data
  # package.
  from deeplab_dpc.data import pipeline  # pylint: disable=g-import-not-at-top
  if num_images < 1:
    raise ValueError(f'--num_representative_images must be >= 1, got {num_images}')
  dataset = pipeline.build_dataset(
      dataset_name, dataset_dir, split, crop_size=tuple(crop_size), batch_size=1,
      is_training=False, min_resize_value=min_resize_value, max_resize_value=max_resize_value,
      resize_factor=resize_factor, with_label=False, seed=0, shuffle=False)

  def images():
    for element in dataset.take(num_images):
      yield element['image'].numpy()

  return images


def interpreter(model, num_threads=None):
  """A TFLite interpreter with its tensors allocated.

  Uses the LiteRT package (`ai_edge_litert`) if installed, else `tf.lite`'s
  interpreter (deprecated in favour of LiteRT but still shipped with TF 2.21).

  Args:
    model: Path of a .tflite file, or its bytes.
    num_threads: Interpreter threads; None: the runtime's default.
  """
  if isinstance(model, (str, os.PathLike)):
    if not fileio.isfile(model):
      raise FileNotFoundError(f'--tflite_path: no such file: {model}')
    kwargs = {'model_path': os.fspath(model)}
  else:
    kwargs = {'model_content': bytes(model)}
  try:
    from ai_edge_litert import interpreter as litert  # pylint: disable=g-import-not-at-top
    result = litert.Interpreter(num_threads=num_threads, **kwargs)
  except ImportError:
    with warnings.catch_warnings():
      warnings.filterwarnings('ignore', message='.*tf.lite.Interpreter is deprecated.*')
      result = tf.lite.Interpreter(num_threads=num_threads, **kwargs)
  result.allocate_tensors()
  return result


def pad_image(image: np.ndarray, crop_size) -> np.ndarray:
  """The .tflite's pre-processing of an image of at most the crop size.

  Args:
    image: uint8 (or float) [height, width, 3].
    crop_size: (crop_height, crop_width).

  Returns:
    float32 [1, crop_height, crop_width, 3], the image at the top left and the
    mean pixel 127.5 elsewhere.

  Raises:
    ValueError: If the image is not [H, W, 3] or larger than the crop size.
  """
  image = np.asarray(image)
  crop_h, crop_w = crop_size
  if image.ndim != 3 or image.shape[-1] != 3:
    raise ValueError(f'image must be [height, width, 3], got shape {image.shape}')
  height, width = image.shape[:2]
  if height > crop_h or width > crop_w:
    raise ValueError(f'image {height}x{width} is larger than the model\'s input {crop_h}x'
                     f'{crop_w}: resize it first (resize_to_range) or export a larger '
                     '--crop_size')
  padded = np.full((1, crop_h, crop_w, 3), constants.MEAN_PIXEL, np.float32)
  padded[0, :height, :width] = image
  return padded


class TFLiteSegmenter:
  """Runs a DeepLab .tflite on images of any size, with the documented pre/post-processing.

  Images of at most the input size are padded and the predictions cropped back.
  With `min_resize_value`, every image is first resized keeping its aspect ratio
  (as the SavedModel's resize mode), and the predictions are resized back with
  nearest neighbour (aligned corners).
  """

  def __init__(self, model, num_threads=None, min_resize_value=None, max_resize_value=None,
               resize_factor=None):
    """Loads the model.

    Args:
      model: Path of a .tflite file from `export_tflite`, or its bytes.
      num_threads: Interpreter threads.
      min_resize_value: See `serving.serving_function`; None: no resizing.
      max_resize_value: See `serving.serving_function`.
      resize_factor: See `serving.serving_function`.
    """
    self._resize = serving.check_resize_values(min_resize_value, max_resize_value,
                                               resize_factor)
    self._resize_values = (min_resize_value, max_resize_value, resize_factor)
    self.interpreter = interpreter(model, num_threads)
    self.runner = self.interpreter.get_signature_runner(SIGNATURE)
    shape = self.runner.get_input_details()['image']['shape']
    self.crop_size = (int(shape[1]), int(shape[2]))

  def run_padded(self, padded: np.ndarray) -> dict:
    """Raw outputs for a float32 [1, crop_h, crop_w, 3] input."""
    return self.runner(image=np.asarray(padded, np.float32))

  def __call__(self, image: np.ndarray) -> np.ndarray:
    """int32 [height, width] class ids of a uint8 [height, width, 3] image."""
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[-1] != 3:
      raise ValueError(f'image must be [height, width, 3], got shape {image.shape}')
    size = image.shape[:2]
    if self._resize:
      image = serving.resize_images_to_range(image[None], *self._resize_values)[0].numpy()
    labels = self.run_padded(pad_image(image, self.crop_size))['semantic_predictions']
    labels = labels[:, :image.shape[0], :image.shape[1]]
    if self._resize:
      labels = tf.raw_ops.ResizeNearestNeighbor(
          images=labels[..., None], size=size, align_corners=True,
          half_pixel_centers=False)[..., 0].numpy()
    return labels[0]
