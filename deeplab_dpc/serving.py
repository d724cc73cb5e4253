"""SavedModel export with the signature serving systems call.

`serving_default(image)`: uint8 [batch, height, width, 3] with height and width
at most the crop size. As the original `export_model.py`, smaller images are padded
(bottom/right) with the mean pixel to the crop size, and the outputs are cropped
back to the input size:

* `semantic_predictions`: int32 [batch, height, width];
* `semantic_probabilities`: float32 [batch, height, width, classes];
* `logits`: float32 [batch, height, width, classes] (see `model.predict`).
"""

import json
import os
import shutil
import tempfile

import keras
import tensorflow as tf

from deeplab_dpc import constants
from deeplab_dpc import model as model_lib

OPTIONS_ASSET = 'deeplab_options.json'


def _pad_to_crop(images, crop_size):
  """Pads uint8 images to the crop size with the mean pixel; checks they fit."""
  crop_h, crop_w = crop_size
  # The signature leaves the rank open because a loaded signature does not
  # enforce a declared rank; this check's error names `image` and its shape.
  images = tf.ensure_shape(images, [None, None, None, 3])
  shape = tf.shape(images)
  height, width = shape[1], shape[2]
  with tf.control_dependencies([
      tf.debugging.assert_less_equal(
          height, crop_h, message=f'image height exceeds the crop height {crop_h} '
          '(export with a larger --crop_size)'),
      tf.debugging.assert_less_equal(
          width, crop_w, message=f'image width exceeds the crop width {crop_w} '
          '(export with a larger --crop_size)'),
  ]):
    x = tf.cast(images, tf.float32) - constants.MEAN_PIXEL
  x = tf.pad(x, [[0, 0], [0, crop_h - height], [0, crop_w - width], [0, 0]])
  x = x + constants.MEAN_PIXEL
  return tf.ensure_shape(x, [None, crop_h, crop_w, 3]), height, width


def serving_function(model: model_lib.DeepLabModel, inference_scales=(1.0,),
                     add_flipped_images=False):
  """The `serving_default` function of a model (a tf.function over uint8 images)."""
  crop_size = model.options.crop_size
  scales = tuple(float(s) for s in inference_scales)

  @tf.function(input_signature=[tf.TensorSpec(None, tf.uint8, name='image')])
  def serve(image):
    padded, height, width = _pad_to_crop(image, crop_size)
    outputs = model_lib.predict(model, padded, scales, add_flipped_images)
    return {key: value[:, :height, :width] for key, value in outputs.items()}

  return serve


def export_saved_model(model: model_lib.DeepLabModel, export_path: str,
                       inference_scales=(1.0,), add_flipped_images=False) -> str:
  """Writes a SavedModel with `serving_default`, atomically.

  The model options go along as `assets/deeplab_options.json`.

  Args:
    model: A built `DeepLabModel` holding the weights to serve.
    export_path: Directory to create (replaced if it exists).
    inference_scales: Image pyramid of the exported graph.
    add_flipped_images: Add flipped passes.

  Returns:
    export_path.
  """
  export_path = os.path.abspath(export_path)
  parent = os.path.dirname(export_path)
  os.makedirs(parent, exist_ok=True)
  tmp = tempfile.mkdtemp(dir=parent, prefix='.tmp-export-')
  try:
    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint('serving_default',
                         serving_function(model, inference_scales, add_flipped_images))
    archive.write_out(tmp, verbose=False)
    os.makedirs(os.path.join(tmp, 'assets'), exist_ok=True)
    with open(os.path.join(tmp, 'assets', OPTIONS_ASSET), 'w', encoding='utf-8') as f:
      json.dump({'model_options': model.options.to_dict(),
                 'inference_scales': list(inference_scales),
                 'add_flipped_images': bool(add_flipped_images)}, f, indent=1)
    if os.path.exists(export_path):
      shutil.rmtree(export_path)
    os.replace(tmp, export_path)
  finally:
    if os.path.exists(tmp):
      shutil.rmtree(tmp)
  return export_path
