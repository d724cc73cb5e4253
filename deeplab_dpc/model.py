"""DeepLab assembled from its parts, and prediction as the original computes it.

`DeepLabModel(images)` maps float32 pixels in [0, 255] (NHWC, static size) to the
logits at the decoder's (or the head's) stride, as the original `_get_logits`.
`predict` adds the upsampling, softmax and argmax of `predict_labels`, and the
image pyramid with flipping of `predict_labels_multi_scale`.
"""

from typing import Sequence

import keras
from keras import ops

from deeplab_dpc import backbones
from deeplab_dpc import constants
from deeplab_dpc import decoder as decoder_lib
from deeplab_dpc import layers
from deeplab_dpc.heads import aspp as aspp_lib
from deeplab_dpc.heads import dense_prediction_cell
from deeplab_dpc.options import ModelOptions

MODEL_NAME = 'deeplab'


@keras.saving.register_keras_serializable(package='deeplab_dpc')
class DeepLabModel(keras.Model):
  """DeepLab (v3 / v3+) with an ASPP or Dense Prediction Cell head.

  Args:
    options: A `ModelOptions` (or its dict form).
  """

  def __init__(self, options, **kwargs):
    kwargs.setdefault('name', MODEL_NAME)
    super().__init__(**kwargs)
    if isinstance(options, dict):
      options = ModelOptions.from_dict(options)
    options.validate()
    self.options = options
    end_points = backbones.decoder_end_points(options.model_variant)
    self.decoder_end_point_names = tuple(
        end_points[s] for s in (options.decoder_output_stride or ()))
    self.backbone = backbones.build_backbone(options, self.decoder_end_point_names)
    conv_kwargs = dict(batch_norm_epsilon=constants.HEAD_BATCH_NORM_EPSILON,
                       batch_norm_decay=(options.batch_norm_decay or
                                         constants.HEAD_BATCH_NORM_DECAY),
                       fine_tune_batch_norm=options.fine_tune_batch_norm,
                       sync_batch_norm=options.sync_batch_norm,
                       weight_decay=options.weight_decay)
    self.head = None
    if options.uses_dense_prediction_cell:
      self.head = dense_prediction_cell.DensePredictionCell(
          options.cell, output_stride=options.output_stride,
          image_pooling_crop_size=options.image_pooling_crop_size,
          conv_kwargs=conv_kwargs)
    elif options.aspp_with_batch_norm:
      self.head = aspp_lib.ASPP(
          atrous_rates=options.atrous_rates, output_stride=options.output_stride,
          add_image_level_feature=options.add_image_level_feature,
          image_pooling_crop_size=options.image_pooling_crop_size,
          image_pooling_stride=options.image_pooling_stride,
          aspp_with_separable_conv=options.aspp_with_separable_conv,
          conv_kwargs=conv_kwargs)
    self.decoder = None
    if options.decoder_output_stride:
      self.decoder = decoder_lib.Decoder(
          num_stages=len(options.decoder_output_stride),
          decoder_use_separable_conv=options.decoder_use_separable_conv,
          conv_kwargs=conv_kwargs)
    # Without ASPP batch norm, the rates become summed logits branches.
    rates = ((1,) if options.aspp_with_batch_norm or not options.atrous_rates
             else options.atrous_rates)
    if options.uses_dense_prediction_cell:
      rates = (1,)
    self.logits_layer = decoder_lib.Logits(
        options.num_classes, rates=rates, kernel_size=options.logits_kernel_size,
        weight_decay=options.weight_decay)

  def extract(self, images, training=False) -> dict:
    """Every stage's output, keyed as the golden data names them.

    Keys: `backbone_features`, `head_output`, `decoder_output` (with a decoder),
    `decoder_low_level_features` (the first stage's end point), `dpc_branch<i>`
    (with a DPC head; computed separately, so only call this for inspection),
    `logits`.
    """
    out = {}
    backbone_out = self.backbone(images, training=training)
    features = out['backbone_features'] = backbone_out[backbones.FEATURES]
    if isinstance(self.head, dense_prediction_cell.DensePredictionCell):
      for i, branch in enumerate(self.head.branch_outputs(features, training=training)):
        out[f'dpc_branch{i}'] = branch
    x = out['head_output'] = (self.head(features, training=training)
                              if self.head is not None else features)
    if self.decoder is not None:
      low_level = [backbone_out[name] for name in self.decoder_end_point_names]
      out['decoder_low_level_features'] = low_level[0]
      x = out['decoder_output'] = self.decoder(x, low_level, training=training)
    out['logits'] = self.logits_layer(x)
    return out

  def call(self, images, training=False):
    backbone_out = self.backbone(images, training=training)
    x = backbone_out[backbones.FEATURES]
    if self.head is not None:
      x = self.head(x, training=training)
    if self.decoder is not None:
      x = self.decoder(x, [backbone_out[n] for n in self.decoder_end_point_names],
                       training=training)
    return self.logits_layer(x)

  def build_for_crop(self) -> 'DeepLabModel':
    """Creates the variables by a call at the crop size; returns self."""
    height, width = self.options.crop_size
    self(ops.zeros((1, height, width, 3)), training=False)
    return self

  def get_config(self):
    return {'name': self.name, 'options': self.options.to_dict()}

  @classmethod
  def from_config(cls, config):
    return cls(ModelOptions.from_dict(config['options']), name=config.get('name', MODEL_NAME))


def build_model(options: ModelOptions) -> DeepLabModel:
  """A DeepLab model with its variables created (randomly initialised)."""
  return DeepLabModel(options).build_for_crop()


def _logits_for_scale(model: DeepLabModel, images, scale: float, pyramid_max: float,
                      flip: bool):
  """One pass of `multi_scale_logits` with a one-scale pyramid, as the original.

  The image is resized to scale_dimension(size, scale); the pass's logits are
  resized to scale_dimension(size, max(1, pyramid_max) / logits_stride).
  """
  height, width = layers.static_spatial_size(images)
  if flip:
    images = ops.flip(images, axis=2)
  if scale != 1.0:
    images = layers.resize_bilinear(
        images, (layers.scale_dimension(height, scale), layers.scale_dimension(width, scale)))
  logits = model(images, training=False)
  stride = model.options.logits_output_stride
  target = (layers.scale_dimension(height, max(1.0, pyramid_max) / stride),
            layers.scale_dimension(width, max(1.0, pyramid_max) / stride))
  logits = layers.resize_bilinear(logits, target)
  if flip:
    logits = ops.flip(logits, axis=2)
  return logits


def predict(model: DeepLabModel, images, eval_scales: Sequence[float] = (1.0,),
            add_flipped_images: bool = False) -> dict:
  """Predictions at the input resolution, as `predict_labels[_multi_scale]`.

  One scale without flipping: logits upsampled (align_corners) to the input size,
  softmax, argmax. Otherwise every pass (each scale, each flip) is upsampled to the
  input size and softmaxed; the probabilities are averaged over passes before the
  argmax. (The original ignores `add_flipped_images` for a single scale 1.0; here
  it flips whenever asked.)

  Args:
    model: A `DeepLabModel`.
    images: float32 [batch, height, width, 3] in [0, 255], height/width static
      (normally the crop size).
    eval_scales: The image pyramid (`eval_scales` / `inference_scales`).
    add_flipped_images: Add left-right flipped passes.

  Returns:
    Dict with `semantic_predictions` (int32 [B, H, W]), `semantic_probabilities`
    (float32 [B, H, W, C]) and `logits` (float32 [B, H, W, C]: the upsampled
    logits for one pass, else log of the averaged probabilities, so that its
    softmax and argmax agree with the other two).
  """
  scales = tuple(float(s) for s in eval_scales)
  if not scales:
    raise ValueError('eval_scales must name at least one scale')
  size = layers.static_spatial_size(images)
  passes = [(s, False) for s in scales]
  if add_flipped_images:
    passes = [p for s in scales for p in ((s, False), (s, True))]
  if len(passes) == 1 and not model.options.prediction_with_upsampled_logits:
    return _predict_with_nearest_upsampling(
        _logits_for_scale(model, images, scales[0], scales[0], False), size)
  if len(passes) == 1:
    logits = layers.resize_bilinear(
        _logits_for_scale(model, images, scales[0], scales[0], False), size)
    probabilities = ops.softmax(logits, axis=-1)
  else:
    # multi_scale_logits is called with a one-scale pyramid per pass.
    probabilities = ops.mean(ops.stack([
        ops.softmax(layers.resize_bilinear(
            _logits_for_scale(model, images, s, s, flip), size), axis=-1)
        for s, flip in passes]), axis=0)
    logits = ops.log(ops.maximum(probabilities, 1e-30))
  return {
      # Single pass: argmax of the logits, as the original (softmax may tie).
      'semantic_predictions': layers.argmax(logits if len(passes) == 1 else probabilities),
      'semantic_probabilities': probabilities,
      'logits': logits,
  }


def _predict_with_nearest_upsampling(logits, size) -> dict:
  """`prediction_with_upsampled_logits=False`: argmax first, then nearest upsampling.

  Cheaper on large outputs; the original resizes the argmax with nearest neighbour
  (align_corners=True) and the softmax bilinearly.
  """
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  labels = tf.cast(tf.argmax(logits, axis=-1, output_type=tf.int32)[..., None], tf.int32)
  labels = tf.raw_ops.ResizeNearestNeighbor(images=labels, size=list(size),
                                            align_corners=True, half_pixel_centers=False)
  upsampled = layers.resize_bilinear(logits, size)
  return {
      'semantic_predictions': labels[..., 0],
      'semantic_probabilities': layers.resize_bilinear(ops.softmax(logits, axis=-1), size),
      'logits': upsampled,
  }
