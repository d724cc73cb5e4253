"""Building blocks shared by the backbones, heads and decoder.

Every convolution here owns its variables under the original tf-slim names
(`weights`, `depthwise_weights`, `biases`, and a `BatchNorm` sub-layer holding
`gamma`, `beta`, `moving_mean`, `moving_variance`), so a layer named like the
original scope has variable paths equal to the original checkpoint keys.
"""

import keras
import numpy as np
from keras import ops

from deeplab_dpc import constants
# Part of this module's API: every layer derives its sizes with it.
from deeplab_dpc.sizes import scale_dimension  # pylint: disable=unused-import

ACTIVATIONS = {
    None: None,
    'relu': ops.relu,
    'relu6': ops.relu6,
}


def static_spatial_size(x) -> tuple[int, int]:
  """Height and width of an NHWC tensor, which must be known at trace time."""
  height, width = x.shape[1], x.shape[2]
  if height is None or width is None:
    raise ValueError(
        'DeepLab derives its pooling kernels and resize targets from the crop size, '
        f'so the spatial size must be static; got shape {tuple(x.shape)}')
  return int(height), int(width)


def _align_corners_matrix(out_size: int, in_size: int) -> np.ndarray:
  """[out, in] matrix of bilinear weights with align_corners=True."""
  matrix = np.zeros((out_size, in_size), np.float32)
  if out_size == 1 or in_size == 1:
    matrix[:, 0] = 1.0
    return matrix
  scale = (in_size - 1) / (out_size - 1)
  for o in range(out_size):
    position = o * scale
    low = min(int(np.floor(position)), in_size - 1)
    high = min(low + 1, in_size - 1)
    frac = np.float32(position - low)
    matrix[o, low] += 1.0 - frac
    matrix[o, high] += frac
  return matrix


def argmax(x):
  """int32 argmax over the last axis, as the original's `tf.argmax`.

  On TensorFlow the plain op: `keras.ops.argmax` first orders -0.0 below 0.0
  (three more passes over the logits, ~2% of a 513x513 prediction), where the
  original takes the first of the tied classes.
  """
  if keras.backend.backend() == 'tensorflow':
    import tensorflow as tf  # pylint: disable=g-import-not-at-top
    return tf.argmax(x, axis=-1, output_type=tf.int32)
  return ops.cast(ops.argmax(x, axis=-1), 'int32')


def resize_bilinear(x, size: tuple[int, int]):
  """Bilinear resize with align_corners=True, as `tf.image.resize_bilinear` in TF1.

  The original resizes this way everywhere (decoder, image pooling, logits), even
  between equal sizes. On TensorFlow the legacy kernel runs; other backends use an
  exact separable interpolation with the same weights.

  Args:
    x: NHWC tensor with a static spatial size.
    size: Target (height, width).

  Returns:
    The resized tensor, float32 (or x's float dtype).
  """
  in_h, in_w = static_spatial_size(x)
  out_h, out_w = int(size[0]), int(size[1])
  if (in_h, in_w) == (out_h, out_w):
    return x  # align_corners between equal sizes is the identity.
  if keras.backend.backend() == 'tensorflow':
    import tensorflow as tf  # pylint: disable=g-import-not-at-top
    return tf.raw_ops.ResizeBilinear(
        images=x, size=[out_h, out_w], align_corners=True,
        half_pixel_centers=False)
  dtype = x.dtype
  rows = ops.convert_to_tensor(_align_corners_matrix(out_h, in_h), dtype=dtype)
  cols = ops.convert_to_tensor(_align_corners_matrix(out_w, in_w), dtype=dtype)
  x = ops.einsum('oh,bhwc->bowc', rows, x)
  return ops.einsum('pw,bowc->bopc', cols, x)


def _bias_add(x, bias):
  if keras.backend.backend() == 'tensorflow':
    import tensorflow as tf  # pylint: disable=g-import-not-at-top
    return tf.nn.bias_add(x, bias)  # Grappler fuses Conv2D + BiasAdd + Relu.
  return x + bias


def _float32(variable):
  """`variable` as float32 (mixed precision reads it in the 16-bit compute dtype)."""
  return ops.cast(variable, 'float32')


@keras.saving.register_keras_serializable(package='deeplab_dpc')
class BatchNorm(keras.layers.BatchNormalization):
  """tf-slim's `batch_norm` after a conv: `gamma`, `beta`, `moving_mean`, `moving_variance`.

  Batch statistics are used when training with `fine_tune_batch_norm` (and the
  layer trainable, as Keras' rule), else the moving ones, as the original's
  `is_training and fine_tune_batch_norm`. On TensorFlow it runs as the original's
  FusedBatchNormV3 op: in training one pass instead of Keras' moments and affine
  ops, the moving averages taking the op's Bessel-corrected (n / (n - 1)) batch
  variance as the original's (Keras' own layer averages the biased one); at
  inference Grappler fuses it into the preceding regular conv's oneDNN kernel.
  Synchronised batch norm needs Keras' cross-replica moments, other backends
  Keras' layer. A conv may instead fold it into its kernel (`fold_batch_norm`).

  Args:
    decay: Moving-average decay (Keras' `momentum`).
    epsilon: 1e-3 in the backbones, 1e-5 in the heads and decoder.
    fine_tune_batch_norm: Train on batch statistics when training.
    synchronized: Batch statistics across replicas.
    **kwargs: `keras.layers.BatchNormalization` arguments (e.g. `name`).
  """

  def __init__(self, decay=constants.HEAD_BATCH_NORM_DECAY,
               epsilon=constants.HEAD_BATCH_NORM_EPSILON, fine_tune_batch_norm=True,
               synchronized=False, **kwargs):
    kwargs.setdefault('name', 'BatchNorm')
    super().__init__(momentum=decay, epsilon=epsilon, synchronized=synchronized, **kwargs)
    self.fine_tune_batch_norm = fine_tune_batch_norm

  def uses_batch_statistics(self, training) -> bool:
    return bool(training) and self.fine_tune_batch_norm and self.trainable

  def call(self, inputs, training=None, mask=None):
    batch_statistics = self.uses_batch_statistics(training)
    if keras.backend.backend() != 'tensorflow' or (batch_statistics and self.synchronized):
      return super().call(inputs, training=batch_statistics, mask=mask)
    import tensorflow as tf  # pylint: disable=g-import-not-at-top
    # The op takes float32 parameters for any input dtype (mixed precision).
    gamma, beta = _float32(self.gamma), _float32(self.beta)
    if not batch_statistics:
      y, _, _ = tf.compat.v1.nn.fused_batch_norm(
          inputs, gamma, beta, mean=_float32(self.moving_mean),
          variance=_float32(self.moving_variance), epsilon=self.epsilon, is_training=False)
      return y
    y, mean, variance = tf.compat.v1.nn.fused_batch_norm(
        inputs, gamma, beta, epsilon=self.epsilon, is_training=True)
    decay = self.momentum
    self.moving_mean.assign(self.moving_mean * decay + mean * (1.0 - decay))
    self.moving_variance.assign(self.moving_variance * decay + variance * (1.0 - decay))
    return y

  def get_config(self):
    config = super().get_config()
    config['decay'] = config.pop('momentum')
    config['fine_tune_batch_norm'] = self.fine_tune_batch_norm
    return config


def fold_batch_norm(kernel, bias, bn: BatchNorm, depthwise: bool):
  """A conv's kernel and bias with inference batch norm folded in, in float32.

  conv(x, k) * s + o = conv(x, k * s) + o with s = gamma / sqrt(var + eps) and
  o = beta - mean * s; a depthwise kernel [kh, kw, C, 1] scales along C.

  Returns:
    (kernel, bias), float32 whatever the compute dtype (mixed precision).
  """
  scale = _float32(bn.gamma) * ops.rsqrt(_float32(bn.moving_variance) + bn.epsilon)
  offset = _float32(bn.beta) - _float32(bn.moving_mean) * scale
  kernel = _float32(kernel) * (ops.reshape(scale, (-1, 1)) if depthwise else scale)
  bias = offset if bias is None else _float32(bias) * scale + offset
  return kernel, bias


def fixed_padding(x, kernel_size: int, rate: int = 1):
  """Pads H and W as the original `fixed_padding`, independently of the input size.

  Strided convs of the Xception stem and modules use this followed by a VALID conv
  so the result does not depend on whether the input size is even.
  """
  effective = kernel_size + (kernel_size - 1) * (rate - 1)
  pad_total = effective - 1
  pad_beg = pad_total // 2
  pad_end = pad_total - pad_beg
  return ops.pad(x, [[0, 0], [pad_beg, pad_end], [pad_beg, pad_end], [0, 0]])


def _pair(value) -> tuple[int, int]:
  if isinstance(value, (list, tuple)):
    return int(value[0]), int(value[1])
  return int(value), int(value)


@keras.saving.register_keras_serializable(package='deeplab_dpc')
class ConvBN(keras.layers.Layer):
  """Conv (regular or depthwise), then optional batch norm and activation.

  The layer is the tf-slim `conv2d` / `separable_conv2d(num_outputs=None)` with
  `normalizer_fn=batch_norm`: no bias when batch norm follows.

  Args:
    filters: Output channels; None for a depthwise conv (multiplier 1).
    kernel_size: Int or (kh, kw).
    strides: Int stride.
    rate: Int or (rh, rw) atrous rate.
    padding: 'same' (TF SAME), 'valid', or 'fixed' (original `fixed_padding`
      then VALID).
    use_batch_norm: Follow the conv with batch norm (`BatchNorm` sub-layer).
    batch_norm_epsilon: Epsilon of that batch norm (1e-3 backbone, 1e-5 head).
    batch_norm_decay: Moving-average decay (Keras `momentum`).
    fine_tune_batch_norm: When False, batch norm always uses its moving
      statistics (gamma and beta still train), as the original's
      `is_training and fine_tune_batch_norm`.
    sync_batch_norm: Synchronise batch statistics across replicas.
    activation: None, 'relu' or 'relu6', after batch norm.
    use_bias: Add `biases` (only the logits layer does).
    kernel_stddev: If set, truncated-normal initialiser with this stddev, else
      Glorot uniform (tf-slim's xavier default).
    weight_decay: L2 regulariser scale on `weights` (0 disables it). Depthwise
      kernels are never regularised, as in the original (slim's
      `regularize_depthwise=False` in every DeepLab scope).
  """

  def __init__(self, filters=None, kernel_size=1, strides=1, rate=1, padding='same',
               use_batch_norm=True, batch_norm_epsilon=constants.HEAD_BATCH_NORM_EPSILON,
               batch_norm_decay=constants.HEAD_BATCH_NORM_DECAY,
               fine_tune_batch_norm=True, sync_batch_norm=False, activation='relu',
               use_bias=False, kernel_stddev=None, weight_decay=0.0, **kwargs):
    super().__init__(**kwargs)
    if padding not in ('same', 'valid', 'fixed'):
      raise ValueError(f'padding must be same, valid or fixed, got {padding!r}')
    if activation not in ACTIVATIONS:
      raise ValueError(f'activation must be one of {list(ACTIVATIONS)}, got {activation!r}')
    self.filters = filters
    self.kernel_size = _pair(kernel_size)
    self.strides = int(strides)
    self.rate = _pair(rate)
    self.padding = padding
    self.use_batch_norm = use_batch_norm
    self.batch_norm_epsilon = batch_norm_epsilon
    self.batch_norm_decay = batch_norm_decay
    self.fine_tune_batch_norm = fine_tune_batch_norm
    self.sync_batch_norm = sync_batch_norm
    self.activation = activation
    self.use_bias = use_bias
    self.kernel_stddev = kernel_stddev
    self.weight_decay = 0.0 if filters is None else weight_decay
    self.batch_norm = None
    if use_batch_norm:
      self.batch_norm = BatchNorm(batch_norm_decay, batch_norm_epsilon,
                                  fine_tune_batch_norm, sync_batch_norm)

  @property
  def depthwise(self) -> bool:
    return self.filters is None

  def build(self, input_shape):
    channels = int(input_shape[-1])
    kh, kw = self.kernel_size
    if self.kernel_stddev is None:
      initializer = keras.initializers.GlorotUniform()
    else:
      initializer = keras.initializers.TruncatedNormal(stddev=self.kernel_stddev)
    # tf-slim's l2_regularizer(wd) is wd * sum(w^2) / 2; Keras' L2(l) is l * sum(w^2).
    regularizer = (keras.regularizers.L2(self.weight_decay / 2.0)
                   if self.weight_decay else None)
    if self.depthwise:
      self.kernel = self.add_weight(
          name='depthwise_weights', shape=(kh, kw, channels, 1),
          initializer=initializer, regularizer=regularizer)
      out_channels = channels
    else:
      self.kernel = self.add_weight(
          name='weights', shape=(kh, kw, channels, self.filters),
          initializer=initializer, regularizer=regularizer)
      out_channels = self.filters
    self.bias = None
    if self.use_bias:
      self.bias = self.add_weight(name='biases', shape=(out_channels,),
                                  initializer='zeros')
    if self.batch_norm is not None:
      self.batch_norm.build(tuple(input_shape[:-1]) + (out_channels,))

  def call(self, inputs, training=False):
    x = inputs
    padding = self.padding
    if padding == 'fixed':
      x = fixed_padding(x, self.kernel_size[0], self.rate[0])
      padding = 'valid'
    kernel, bias = self.kernel, self.bias
    fold = self._folds_batch_norm(training)
    if fold:
      kernel, bias = fold_batch_norm(kernel, bias, self.batch_norm, self.depthwise)
    kernel = ops.cast(kernel, x.dtype)
    bias = None if bias is None else ops.cast(bias, x.dtype)
    kernel, rate = self._taps_inside(kernel, x, padding)
    if self.depthwise:
      x = ops.depthwise_conv(x, kernel, strides=self.strides, padding=padding,
                             dilation_rate=rate)
    else:
      x = ops.conv(x, kernel, strides=self.strides, padding=padding, dilation_rate=rate)
    if bias is not None:
      x = _bias_add(x, bias)
    if self.batch_norm is not None and not fold:
      x = self.batch_norm(x, training=training)
    activation = ACTIVATIONS[self.activation]
    return x if activation is None else activation(x)

  def _taps_inside(self, kernel, x, padding):
    """The kernel and rate without the atrous taps that can only read padding.

    With SAME padding and stride 1, a tap at offset (k - centre) * rate lies outside
    every output's input when rate >= the feature size along that axis, so it only
    ever multiplies zeros: dropping it changes no value and no gradient of the
    remaining weights, and saves the space-to-batch atrous kernel (DPC rates up to
    42 at output stride 8 on 9x9 or 17x17 features would read padding alone).
    """
    rate = list(self.rate)
    if padding != 'same' or self.strides != 1:
      return kernel, tuple(rate)
    size = (x.shape[1], x.shape[2])
    for axis in (0, 1):
      taps = self.kernel_size[axis]
      if taps > 1 and taps % 2 and size[axis] is not None and rate[axis] >= size[axis]:
        centre = (taps - 1) // 2
        kernel = kernel[centre:centre + 1] if axis == 0 else kernel[:, centre:centre + 1]
        rate[axis] = 1
    return kernel, tuple(rate)

  def _folds_batch_norm(self, training) -> bool:
    """Whether inference batch norm is folded into this conv's kernel and a bias.

    Depthwise convs (tiny kernels), convs with a bias and other backends than
    TensorFlow fold, so batch norm fuses with the conv and activation; regular
    convs on TensorFlow keep the fused op, which Grappler fuses into the conv.
    """
    bn = self.batch_norm
    if bn is None or bn.uses_batch_statistics(training):
      return False
    return keras.backend.backend() != 'tensorflow' or self.depthwise or self.bias is not None

  def compute_output_shape(self, input_shape):
    channels = input_shape[-1] if self.depthwise else self.filters
    spatial = []
    for axis in (0, 1):
      size = input_shape[1 + axis]
      if size is None:
        spatial.append(None)
      elif self.padding == 'same':
        spatial.append(-(-size // self.strides))
      else:
        effective = self.kernel_size[axis] + (self.kernel_size[axis] - 1) * (self.rate[axis] - 1)
        if self.padding == 'fixed':  # `fixed_padding` pads effective - 1 in total.
          size += effective - 1
        spatial.append((size - effective) // self.strides + 1)
    return (input_shape[0], *spatial, channels)

  def get_config(self):
    config = super().get_config()
    config.update(
        filters=self.filters, kernel_size=self.kernel_size, strides=self.strides,
        rate=self.rate, padding=self.padding, use_batch_norm=self.use_batch_norm,
        batch_norm_epsilon=self.batch_norm_epsilon,
        batch_norm_decay=self.batch_norm_decay,
        fine_tune_batch_norm=self.fine_tune_batch_norm,
        sync_batch_norm=self.sync_batch_norm, activation=self.activation,
        use_bias=self.use_bias, kernel_stddev=self.kernel_stddev,
        weight_decay=self.weight_decay)
    return config


def split_separable_conv(scope: str, filters: int, rate=1, **conv_kwargs):
  """The original `split_separable_conv2d`: sibling layers `<scope>_depthwise`, `_pointwise`.

  Depthwise 3x3 -> BN -> ReLU -> pointwise 1x1 -> BN -> ReLU: unlike Keras'
  SeparableConv2D there is an activation between the two convs.

  Args:
    scope: Original scope name (e.g. `aspp1`, `branch0`, `decoder_conv0`).
    filters: Output channels of the pointwise conv.
    rate: Atrous rate of the depthwise conv.
    **conv_kwargs: Batch-norm and regulariser arguments for both `ConvBN`s.

  Returns:
    [depthwise, pointwise] layers, to be applied in order.
  """
  conv_kwargs.setdefault('activation', 'relu')
  return [
      ConvBN(None, 3, rate=rate, kernel_stddev=0.33, name=f'{scope}_depthwise',
             **conv_kwargs),
      ConvBN(filters, 1, kernel_stddev=0.06, name=f'{scope}_pointwise', **conv_kwargs),
  ]


def apply_sequence(layers, x, training=False):
  """Applies layers in order (keeps call sites short)."""
  for layer in layers:
    x = layer(x, training=training)
  return x
