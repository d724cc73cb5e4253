"""The DeepLabv3+ decoder and the logits layer (`model.refine_by_decoder`, `_get_branch_logits`)."""

import keras
from keras import ops

from deeplab_dpc import constants
from deeplab_dpc import layers


@keras.saving.register_keras_serializable(package='deeplab_dpc')
class Decoder(keras.layers.Layer):
  """Refines head features with low-level backbone features, one stage per stride.

  Stage s projects its end point to 48 channels (`feature_projection0`), resizes
  the running features and the projection to the end point's size (which is
  scale_dimension(crop, 1/stride)), concatenates [running, projection] and applies
  two 3x3 convs (`decoder_conv0`, `decoder_conv1`). Stages after the first get the
  scope suffix `_<stage>` as in the original.

  Args:
    num_stages: Number of decoder stages (len of `decoder_output_stride`).
    decoder_use_separable_conv: Split separable convs (else two 3x3 convs
      under `decoder_conv0/decoder_conv0_{1,2}` as `slim.repeat` names them).
    conv_kwargs: Batch-norm and regulariser arguments.
  """

  def __init__(self, num_stages=1, decoder_use_separable_conv=True, conv_kwargs=None,
               **kwargs):
    kwargs.setdefault('name', constants.DECODER_SCOPE)
    super().__init__(**kwargs)
    self.num_stages = num_stages
    self.decoder_use_separable_conv = decoder_use_separable_conv
    self.conv_kwargs = dict(conv_kwargs or {})
    self.projections, self.stage_convs = [], []
    for stage in range(num_stages):
      suffix = f'_{stage}' if stage else ''
      self.projections.append(layers.ConvBN(
          constants.DECODER_PROJECTION_FILTERS, 1, name=f'feature_projection0{suffix}',
          **self.conv_kwargs))
      if decoder_use_separable_conv:
        convs = (layers.split_separable_conv(f'decoder_conv0{suffix}',
                                             constants.DECODER_FILTERS, **self.conv_kwargs) +
                 layers.split_separable_conv(f'decoder_conv1{suffix}',
                                             constants.DECODER_FILTERS, **self.conv_kwargs))
      else:
        convs = [layers.ConvBN(constants.DECODER_FILTERS, 3, name=f'decoder_conv0{suffix}_{k}',
                               **self.conv_kwargs) for k in (1, 2)]
      self.stage_convs.append(convs)

  def call(self, features, end_points, training=False):
    """Args: features: head output; end_points: one low-level tensor per stage."""
    if len(end_points) != self.num_stages:
      raise ValueError(f'decoder expects {self.num_stages} end points, got {len(end_points)}')
    x = features
    for stage, low_level in enumerate(end_points):
      size = layers.static_spatial_size(low_level)
      projected = self.projections[stage](low_level, training=training)
      x = ops.concatenate([layers.resize_bilinear(x, size),
                           layers.resize_bilinear(projected, size)], axis=-1)
      if self.decoder_use_separable_conv:
        x = layers.apply_sequence(self.stage_convs[stage], x, training)
      else:
        # slim.repeat nests its convs in a `decoder_conv0` scope.
        suffix = f'_{stage}' if stage else ''
        with keras.name_scope(f'decoder_conv0{suffix}'):
          x = layers.apply_sequence(self.stage_convs[stage], x, training)
    return x

  def get_config(self):
    config = super().get_config()
    config.update(num_stages=self.num_stages,
                  decoder_use_separable_conv=self.decoder_use_separable_conv,
                  conv_kwargs=self.conv_kwargs)
    return config


@keras.saving.register_keras_serializable(package='deeplab_dpc')
class Logits(keras.layers.Layer):
  """`logits/semantic`: a conv with bias, no batch norm, no activation.

  Without ASPP batch norm and with atrous rates, one conv per rate
  (`semantic`, `semantic_1`, ...) is summed, as the original `_get_branch_logits`.
  """

  def __init__(self, num_classes, rates=(1,), kernel_size=1, weight_decay=0.0, **kwargs):
    kwargs.setdefault('name', constants.LOGITS_SCOPE_NAME)
    super().__init__(**kwargs)
    self.num_classes = num_classes
    self.rates = tuple(rates)
    self.kernel_size = kernel_size
    self.weight_decay = weight_decay
    self.convs = [
        layers.ConvBN(num_classes, kernel_size, rate=rate, use_batch_norm=False,
                      activation=None, use_bias=True, kernel_stddev=0.01,
                      weight_decay=weight_decay,
                      name=constants.OUTPUT_TYPE + (f'_{i}' if i else ''))
        for i, rate in enumerate(self.rates)]

  def call(self, features):
    outputs = [conv(features) for conv in self.convs]
    return outputs[0] if len(outputs) == 1 else ops.sum(ops.stack(outputs), axis=0)

  def get_config(self):
    config = super().get_config()
    config.update(num_classes=self.num_classes, rates=self.rates,
                  kernel_size=self.kernel_size, weight_decay=self.weight_decay)
    return config
