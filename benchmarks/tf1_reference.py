"""The original release's TF1 inference graph, rebuilt op for op, as a speed reference.

The benchmark target is "our Keras model is at least as fast as the original TF1
graph on the same machine". The original code is not available here, so this
module writes, from the documented semantics (`testdata/golden/README.md` and
`SEMANTICS.md`), a `tf.Graph` that emits the ops the original tf-slim graph emits
at inference: `Pad` + VALID for strided convs ("fixed padding"), `Conv2D` without
bias before every batch norm, `DepthwiseConv2dNative` (wrapped in SpaceToBatchND /
BatchToSpaceND when atrous, as `tf.nn.depthwise_conv2d` does), unfolded
`FusedBatchNormV3` on the moving statistics, `Relu`, `ResizeBilinear` with
align_corners=True and `ArgMax`. Variables carry the original checkpoint keys, so
a TF1 checkpoint in the original format restores with a plain `Saver`; matching
the golden outputs then proves the graph computes what the original computes.

It shares no code with our Keras model (the block tables are restated here), so
it is an independent check as well as a timing baseline. Nothing here switches
TensorFlow to graph mode globally: everything lives in the returned `tf.Graph`.

Supported: xception_41/65/71, output stride 8/16 (32 for the backbone, but the
original DPC rejects it), the Dense Prediction Cell head (`conv` and
`pyramid_pooling` ops), the DeepLabv3+ decoder (separable or plain convs, one or
more stages) and upsampled-logits prediction.
"""

import contextlib
import dataclasses

import tensorflow as tf

from deeplab_dpc.testing import timing

# tf-slim's batch-norm epsilon in the xception arg scope, and the one model.py,
# the DPC and the decoder set for everything after the backbone.
_BACKBONE_EPSILON = 1e-3
_HEAD_EPSILON = 1e-5
# Only used when the graph is initialised instead of restored (xception's stddev).
_WEIGHTS_STDDEV = 0.09
# `dense_prediction_cell_hparams()`: reduction_size and concat_channels.
_DPC_DEPTH = 256
_DECODER_PROJECTION_DEPTH = 48
# The original's training defaults (`train.py` flags, `model_options`).
_BATCH_NORM_DECAY = 0.9997
_DPC_KEEP_PROB = 0.9
_WEIGHT_DECAY = 4e-5
_MOMENTUM = 0.9


@dataclasses.dataclass
class _Mode:
  """What slim's arg scopes switch between inference and training graphs."""
  is_training: bool = False
  weight_decay: float = 0.0
  # A recorded DPC dropout keep mask to apply instead of a random one (parity tests).
  keep_mask: tf.Tensor | None = None


_MODE = _Mode()


@contextlib.contextmanager
def _training_mode(weight_decay, keep_mask=None):
  # The builders below read the mode as slim's arg_scope would hand it to them.
  global _MODE  # pylint: disable=global-statement
  previous, _MODE = _MODE, _Mode(True, weight_decay, keep_mask)
  try:
    yield
  finally:
    _MODE = previous


@dataclasses.dataclass(frozen=True)
class _Block:
  """`num_units` identical Xception modules under scope `scope`."""
  scope: str
  depth_list: tuple[int, int, int]
  skip_connection_type: str  # 'conv', 'sum' or 'none'.
  num_units: int
  stride: int
  activation_fn_in_separable_conv: bool = False
  uses_multi_grid: bool = False


def _entry_block(index, depth, stride):
  return _Block(f'entry_flow/block{index}', (depth,) * 3, 'conv', 1, stride)


def _middle_block(num_units):
  return _Block('middle_flow/block1', (728,) * 3, 'sum', num_units, 1)


_EXIT_BLOCKS = (
    _Block('exit_flow/block1', (728, 1024, 1024), 'conv', 1, 2),
    # The last block has no skip and puts the ReLU after each BN instead of before
    # each separable conv; multi_grid only multiplies its rates.
    _Block('exit_flow/block2', (1536, 1536, 2048), 'none', 1, 1,
           activation_fn_in_separable_conv=True, uses_multi_grid=True),
)

# One table per variant, as `core/xception.py` defines them.
XCEPTION_BLOCKS = {
    'xception_41': (_entry_block(1, 128, 2), _entry_block(2, 256, 2),
                    _entry_block(3, 728, 2), _middle_block(8)) + _EXIT_BLOCKS,
    'xception_65': (_entry_block(1, 128, 2), _entry_block(2, 256, 2),
                    _entry_block(3, 728, 2), _middle_block(16)) + _EXIT_BLOCKS,
    'xception_71': (_entry_block(1, 128, 2), _entry_block(2, 256, 1),
                    _entry_block(3, 256, 2), _entry_block(4, 728, 1),
                    _entry_block(5, 728, 2), _middle_block(16)) + _EXIT_BLOCKS,
}

_MODULE = 'xception_module/separable_conv2_pointwise'
_DECODER_END_POINTS_65 = {
    4: (f'entry_flow/block2/unit_1/{_MODULE}',),
    8: (f'entry_flow/block3/unit_1/{_MODULE}',),
    16: (f'exit_flow/block1/unit_1/{_MODULE}',),
}
# Low-level features per decoder output stride (`networks_to_feature_maps`),
# relative to the variant scope: BN outputs of a pointwise conv, before any ReLU.
DECODER_END_POINTS = {
    'xception_41': _DECODER_END_POINTS_65,
    'xception_65': _DECODER_END_POINTS_65,
    'xception_71': {
        4: (f'entry_flow/block3/unit_1/{_MODULE}',),
        8: (f'entry_flow/block5/unit_1/{_MODULE}',),
        16: (f'exit_flow/block1/unit_1/{_MODULE}',),
    },
}


def scale_dimension(dim, scale):
  """The original `utils.scale_dimension`: sizes come from the crop, not tensors."""
  return int((dim - 1) * scale + 1)


def _pair(value):
  return (value, value) if isinstance(value, int) else tuple(value)


def _variable(name, shape, initializer, trainable=True):
  # tf.compat.v1.get_variable keys the variable by the enclosing variable scopes,
  # which is how tf-slim gets the original checkpoint keys.
  return tf.compat.v1.get_variable(name, shape, tf.float32, initializer=initializer,
                                   trainable=trainable)


def _batch_norm(x, epsilon):
  """slim.batch_norm, fused, scale on.

  At inference it normalises with the moving statistics; in training with the
  batch's, and adds to UPDATE_OPS the moving-average assignments of the fused
  op's batch mean and (Bessel-corrected) variance, as slim does.
  """
  channels = x.shape[-1]
  with tf.compat.v1.variable_scope('BatchNorm'):
    gamma = _variable('gamma', [channels], tf.compat.v1.ones_initializer())
    beta = _variable('beta', [channels], tf.compat.v1.zeros_initializer())
    mean = _variable('moving_mean', [channels], tf.compat.v1.zeros_initializer(),
                     trainable=False)
    variance = _variable('moving_variance', [channels], tf.compat.v1.ones_initializer(),
                         trainable=False)
    if not _MODE.is_training:
      # slim's fused path: one FusedBatchNormV3, not folded into the conv.
      y, _, _ = tf.compat.v1.nn.fused_batch_norm(
          x, gamma, beta, mean=mean, variance=variance, epsilon=epsilon, is_training=False)
      return y
    y, batch_mean, batch_variance = tf.compat.v1.nn.fused_batch_norm(
        x, gamma, beta, epsilon=epsilon, is_training=True)
    for variable, value in ((mean, batch_mean), (variance, batch_variance)):
      # moving_averages.assign_moving_average without zero debias.
      update = tf.compat.v1.assign_sub(variable, (variable - value) * (1 - _BATCH_NORM_DECAY))
      tf.compat.v1.add_to_collection(tf.compat.v1.GraphKeys.UPDATE_OPS, update)
  return y


def _regularize(weights):
  """slim's l2_regularizer on a conv's `weights` (never on depthwise ones)."""
  if _MODE.is_training and _MODE.weight_decay:
    tf.compat.v1.add_to_collection(
        tf.compat.v1.GraphKeys.REGULARIZATION_LOSSES,
        tf.multiply(_MODE.weight_decay, tf.nn.l2_loss(weights), name='l2_regularizer'))


def _fixed_padding(x, kernel_size, rate=1):
  """Explicit symmetric padding for a strided VALID conv (original `fixed_padding`).

  Unlike SAME, the padding does not depend on the input size, which keeps the
  strided convs aligned with the stride-2 shortcuts for even sizes too.
  """
  effective = kernel_size + (kernel_size - 1) * (rate - 1)
  pad_beg = (effective - 1) // 2
  pad_end = effective - 1 - pad_beg
  return tf.pad(x, [[0, 0], [pad_beg, pad_end], [pad_beg, pad_end], [0, 0]])


def _conv(x, filters, kernel_size, scope, *, stride=1, padding='SAME', epsilon=None,
          relu=True):
  """slim.conv2d: Conv2D, then BN (no bias) if `epsilon` is set, else BiasAdd."""
  with tf.compat.v1.variable_scope(scope):
    kh, kw = _pair(kernel_size)
    weights = _variable('weights', [kh, kw, x.shape[-1], filters],
                        tf.compat.v1.truncated_normal_initializer(stddev=_WEIGHTS_STDDEV))
    _regularize(weights)
    y = tf.compat.v1.nn.conv2d(x, weights, [1, stride, stride, 1], padding, name='Conv2D')
    if epsilon is not None:
      y = _batch_norm(y, epsilon)
    else:
      biases = _variable('biases', [filters], tf.compat.v1.zeros_initializer())
      y = tf.nn.bias_add(y, biases, name='BiasAdd')
    return tf.nn.relu(y, name='Relu') if relu else y


def _depthwise(x, scope, *, kernel_size=3, stride=1, rate=1, padding='SAME', epsilon,
               relu):
  """slim.separable_conv2d(num_outputs=None): a depthwise conv (multiplier 1) + BN.

  `tf.compat.v1.nn.depthwise_conv2d` with rate > 1 runs the native kernel between
  SpaceToBatchND and BatchToSpaceND, exactly what the original graph contains.
  """
  with tf.compat.v1.variable_scope(scope):
    kh, kw = _pair(kernel_size)
    weights = _variable('depthwise_weights', [kh, kw, x.shape[-1], 1],
                        tf.compat.v1.truncated_normal_initializer(stddev=_WEIGHTS_STDDEV))
    y = tf.compat.v1.nn.depthwise_conv2d(x, weights, [1, stride, stride, 1], padding,
                                         rate=_pair(rate))
    y = _batch_norm(y, epsilon)
    return tf.nn.relu(y, name='Relu') if relu else y


def _split_separable_conv(x, filters, scope, *, kernel_size=3, rate=1,
                          epsilon=_HEAD_EPSILON):
  """`utils.split_separable_conv2d`: depthwise+BN+ReLU, then 1x1+BN+ReLU."""
  x = _depthwise(x, f'{scope}_depthwise', kernel_size=kernel_size, rate=rate,
                 epsilon=epsilon, relu=True)
  return _conv(x, filters, 1, f'{scope}_pointwise', epsilon=epsilon)


def _resize_bilinear(x, size):
  """The original `_resize_bilinear`: legacy bilinear with align_corners=True.

  Emitted even for same-size resizes, as the original does.
  """
  return tf.compat.v1.image.resize_bilinear(x, size, align_corners=True)


def _xception_module(inputs, block, stride, rate, unit_rates, end_points, prefix):
  """Three separable convs plus the skip; records each pointwise output."""
  with tf.compat.v1.variable_scope('xception_module'):
    activate_inside = block.activation_fn_in_separable_conv
    residual = inputs
    for i, depth in enumerate(block.depth_list):
      conv_stride = stride if i == 2 else 1
      conv_rate = rate * unit_rates[i]
      if not activate_inside:
        residual = tf.nn.relu(residual)  # Pre-activation of the separable conv.
      padding = 'SAME'
      if conv_stride > 1:
        residual = _fixed_padding(residual, 3, conv_rate)
        padding = 'VALID'
      residual = _depthwise(residual, f'separable_conv{i + 1}_depthwise', stride=conv_stride,
                            rate=conv_rate, padding=padding, epsilon=_BACKBONE_EPSILON,
                            relu=activate_inside)
      residual = _conv(residual, depth, 1, f'separable_conv{i + 1}_pointwise',
                       epsilon=_BACKBONE_EPSILON, relu=activate_inside)
      end_points[f'{prefix}/xception_module/separable_conv{i + 1}_pointwise'] = residual
    if block.skip_connection_type == 'conv':
      # On the un-activated module input; 1x1 strided SAME takes even positions.
      shortcut = _conv(inputs, block.depth_list[-1], 1, 'shortcut', stride=stride,
                       epsilon=_BACKBONE_EPSILON, relu=False)
      return residual + shortcut
    if block.skip_connection_type == 'sum':
      return residual + inputs
    if block.skip_connection_type == 'none':
      return residual
    raise ValueError(f'unknown skip connection type {block.skip_connection_type!r}')


def _unit_strides_and_rates(unit_strides, output_stride):
  """(stride, rate) per unit, as `stack_blocks_dense` walks them.

  Once the running stride reaches `output_stride`, later units run with stride 1
  at the current rate, and the rate grows by each unit's nominal stride.
  """
  current_stride, rate, walk = 1, 1, []
  for stride in unit_strides:
    if output_stride is not None and current_stride > output_stride:
      raise ValueError('The target output_stride cannot be reached.')
    if output_stride is not None and current_stride == output_stride:
      walk.append((1, rate))
      rate *= stride
    else:
      walk.append((stride, 1))
      current_stride *= stride
  if output_stride is not None and current_stride != output_stride:
    raise ValueError('The target output_stride cannot be reached.')
  return walk


def _xception(images, model_variant, output_stride, multi_grid):
  """The backbone: returns (features, end points keyed by their full scope)."""
  if output_stride is not None and output_stride % 2:
    raise ValueError('The output_stride needs to be a multiple of 2.')
  end_points = {}
  with tf.compat.v1.variable_scope(model_variant):
    x = _fixed_padding(images, 3)
    x = _conv(x, 32, 3, 'entry_flow/conv1_1', stride=2, padding='VALID',
              epsilon=_BACKBONE_EPSILON)
    x = _conv(x, 64, 3, 'entry_flow/conv1_2', epsilon=_BACKBONE_EPSILON)
    blocks = XCEPTION_BLOCKS[model_variant]
    # The stem already has stride 2, so the units walk to half the output stride.
    walk = iter(_unit_strides_and_rates(
        [block.stride for block in blocks for _ in range(block.num_units)],
        None if output_stride is None else output_stride // 2))
    for block in blocks:
      with tf.compat.v1.variable_scope(block.scope):
        for unit in range(block.num_units):
          stride, rate = next(walk)
          with tf.compat.v1.variable_scope(f'unit_{unit + 1}'):
            x = _xception_module(
                x, block, stride, rate, multi_grid if block.uses_multi_grid else (1, 1, 1),
                end_points, f'{model_variant}/{block.scope}/unit_{unit + 1}')
  return x, end_points


def _dense_prediction_cell(features, cell, output_stride, crop_size,
                           image_pooling_crop_size):
  """The DPC (`build_cell`): returns (output, branch outputs)."""
  # Rates are given for OS16; the original rejects OS32 here (multiplier 0).
  conv_rate_multiplier = 16 // output_stride
  if conv_rate_multiplier < 1:
    raise ValueError('conv_rate_multiplier cannot have value < 1.')
  branches = []
  with tf.compat.v1.variable_scope('meta_architecture'):
    for i, op in enumerate(cell):
      scope = f'branch{i}'
      x = features if op['input'] < 0 else branches[op['input']]
      if op['op'] == 'conv':
        if op['kernel'] in (1, [1, 1], (1, 1)):
          branches.append(_conv(x, _DPC_DEPTH, 1, scope, epsilon=_HEAD_EPSILON))
        else:
          rate = [r * conv_rate_multiplier for r in _pair(op['rate'])]
          branches.append(_split_separable_conv(x, _DPC_DEPTH, scope,
                                                kernel_size=op['kernel'], rate=rate))
      elif op['op'] == 'pyramid_pooling':
        # Kernel and target size come from the crop sizes, never the tensor.
        grid = _pair(op['grid_size'])
        pool_crop = image_pooling_crop_size or crop_size
        kernel = [scale_dimension(pool_crop[k], 1. / (output_stride * grid[k]))
                  for k in range(2)]
        target = [scale_dimension(crop_size[k], 1. / output_stride) for k in range(2)]
        pooled = tf.nn.avg_pool2d(x, kernel, [1, 1], 'VALID')
        pooled = _conv(pooled, _DPC_DEPTH, 1, scope, epsilon=_HEAD_EPSILON)
        branches.append(_resize_bilinear(pooled, target))
      else:
        raise ValueError(f'Unrecognized operation {op["op"]!r}.')
    # The DPC's dropout sits on the concat; it is the identity at inference.
    concat = tf.concat(branches, 3)
    if _MODE.keep_mask is not None:
      concat = tf.where(_MODE.keep_mask, concat / _DPC_KEEP_PROB, tf.zeros_like(concat))
    elif _MODE.is_training:
      concat = tf.nn.dropout(concat, rate=1 - _DPC_KEEP_PROB)
    output = _conv(concat, _DPC_DEPTH, 1, 'concat_projection', epsilon=_HEAD_EPSILON)
  return output, branches


def _decoder(features, end_points, model_variant, decoder_output_stride, crop_size,
             use_separable_conv, decoder_filters):
  """`refine_by_decoder`: one stage per decoder output stride."""
  x = features
  with tf.compat.v1.variable_scope('decoder'):
    for stage, stride in enumerate(decoder_output_stride):
      suffix = f'_{stage}' if stage else ''
      for i, name in enumerate(DECODER_END_POINTS[model_variant][stride]):
        parts = [x, _conv(end_points[f'{model_variant}/{name}'], _DECODER_PROJECTION_DEPTH,
                          1, f'feature_projection{i}{suffix}', epsilon=_HEAD_EPSILON)]
        size = [scale_dimension(crop_size[0], 1. / stride),
                scale_dimension(crop_size[1], 1. / stride)]
        concat = tf.concat([_resize_bilinear(part, size) for part in parts], 3)
        if use_separable_conv:
          x = _split_separable_conv(concat, decoder_filters, f'decoder_conv0{suffix}')
          x = _split_separable_conv(x, decoder_filters, f'decoder_conv1{suffix}')
        else:
          # slim.repeat nests its two convs as <scope>/<scope>_1 and _2.
          repeat_scope = f'decoder_conv{i}{suffix}'
          with tf.compat.v1.variable_scope(repeat_scope):
            x = _conv(concat, decoder_filters, 3, f'{repeat_scope}_1', epsilon=_HEAD_EPSILON)
            x = _conv(x, decoder_filters, 3, f'{repeat_scope}_2', epsilon=_HEAD_EPSILON)
  return x


def _check_supported(config):
  """Rejects options whose original code path this builder does not emit."""
  if config['model_variant'] not in XCEPTION_BLOCKS:
    raise ValueError(f'unsupported model_variant {config["model_variant"]!r}')
  if not config.get('dense_prediction_cell_config'):
    raise NotImplementedError('only the dense prediction cell head is built (no ASPP)')
  if set(config['outputs_to_num_classes']) != {'semantic'}:
    raise NotImplementedError('only the `semantic` output is built')
  required = {'use_bounded_activation': False, 'decoder_use_sum_merge': False,
                 'decoder_output_is_logits': False, 'prediction_with_upsampled_logits': True,
                 'logits_kernel_size': 1, 'preprocessed_images_dtype': 'float32'}
  for key, supported in required.items():
    if config.get(key, supported) != supported:
      raise NotImplementedError(f'{key}={config[key]!r} is not built')


def _forward(images, config):
  """`multi_scale_logits` at one scale: the golden arrays up to `merged_logits`."""
  _check_supported(config)
  crop_size = list(config['crop_size'])
  model_variant = config['model_variant']
  output_stride = config['output_stride']
  decoder_output_stride = config.get('decoder_output_stride')
  num_classes = config['outputs_to_num_classes']['semantic']
  outputs = {}
  # The feature extractor's own preprocessing: [0, 255] -> [-1, 1].
  preprocessed = (2.0 / 255.0) * images - 1.0
  features, end_points = _xception(preprocessed, model_variant, output_stride,
                                   tuple(config.get('multi_grid') or (1, 1, 1)))
  outputs['backbone_features'] = features
  head, branches = _dense_prediction_cell(
      features, config['dense_prediction_cell_config'], output_stride, crop_size,
      config.get('image_pooling_crop_size'))
  outputs.update({f'dpc_branch{i}': branch for i, branch in enumerate(branches)})
  outputs['head_output'] = head
  x = head
  logits_output_stride = output_stride
  if decoder_output_stride:
    first = DECODER_END_POINTS[model_variant][decoder_output_stride[0]][0]
    outputs['decoder_low_level_features'] = end_points[f'{model_variant}/{first}']
    x = _decoder(head, end_points, model_variant, decoder_output_stride, crop_size,
                 config.get('decoder_use_separable_conv', True),
                 config.get('decoder_filters', 256))
    outputs['decoder_output'] = x
    logits_output_stride = min(decoder_output_stride)
  with tf.compat.v1.variable_scope('logits'):
    # With ASPP batch norm (or no atrous rates) the original has one 1x1 conv.
    logits = _conv(x, num_classes, 1, 'semantic', relu=False)
  outputs['logits'] = logits
  # `multi_scale_logits` resizes to the logits' crop-derived size even for one
  # scale (same size here, but the op is in the graph).
  outputs['merged_logits'] = _resize_bilinear(logits, [
      scale_dimension(crop_size[0], 1. / logits_output_stride),
      scale_dimension(crop_size[1], 1. / logits_output_stride)])
  return outputs


def build_inference_graph(config: dict, batch: int):
  """Builds the original's inference graph (`model.predict_labels`, one scale).

  Args:
    config: The original's model options, as the golden cases' `config.json`
      "model_options" (model_variant, output_stride, crop_size,
      decoder_output_stride, decoder_use_separable_conv,
      dense_prediction_cell_config, outputs_to_num_classes, ...).
    batch: Static batch size of the input placeholder.

  Returns:
    (graph, images, outputs, saver): `images` is a float32 placeholder
    [batch, crop_h, crop_w, 3] of [0, 255] pixels; `outputs` holds the tensors
    of the golden arrays (backbone_features, decoder_low_level_features,
    dpc_branch{i}, head_output, decoder_output when there is a decoder, logits,
    merged_logits, logits_upsampled, predictions: int64 argmax); `saver`
    restores every variable by its original name.

  Raises:
    ValueError, NotImplementedError: for options the original rejects or this
      builder does not emit.
  """
  graph = tf.Graph()
  with graph.as_default():
    images = tf.compat.v1.placeholder(tf.float32, [batch] + list(config['crop_size']) + [3],
                                      name='images')
    outputs = _forward(images, config)
    # `predict_labels` resizes to the image's runtime size, then takes argmax.
    upsampled = _resize_bilinear(outputs['merged_logits'], tf.shape(images)[1:3])
    outputs['logits_upsampled'] = upsampled
    outputs['predictions'] = tf.argmax(upsampled, 3)
    saver = tf.compat.v1.train.Saver(tf.compat.v1.global_variables())
  return graph, images, outputs, saver


@dataclasses.dataclass
class TrainingGraph:
  """The original's training graph; feed `images`, `labels` (and `keep_mask`)."""
  graph: tf.Graph
  images: tf.Tensor
  labels: tf.Tensor
  keep_mask: tf.Tensor | None
  train_op: tf.Operation
  losses: dict
  saver: tf.compat.v1.train.Saver


def _softmax_cross_entropy(logits, labels, num_classes, ignore_label):
  """`add_softmax_cross_entropy_loss_for_each_scale` with upsampled logits.

  Logits are resized to the labels (align_corners); ignored pixels weigh 0 and
  the sum is divided by the non-zero weights of the whole batch
  (SUM_BY_NONZERO_WEIGHTS).
  """
  logits = _resize_bilinear(logits, labels.shape[1:3])
  labels = tf.reshape(labels, [-1])
  weights = tf.cast(tf.not_equal(labels, ignore_label), tf.float32)
  one_hot = tf.one_hot(labels * tf.cast(weights, labels.dtype), num_classes)
  return tf.compat.v1.losses.softmax_cross_entropy(
      one_hot, tf.reshape(logits, [-1, num_classes]), weights=weights,
      reduction=tf.compat.v1.losses.Reduction.SUM_BY_NONZERO_WEIGHTS)


def build_training_graph(config: dict, batch: int, *, base_learning_rate: float = 1e-4,
                         training_number_of_steps: int = 30000, ignore_label: int = 255,
                         weight_decay: float = _WEIGHT_DECAY, inject_keep_mask: bool = False,
                         seed: int = 0):
  """Builds the original train.py's step (one clone, fine_tune_batch_norm=True).

  The forward pass in training mode (batch norm on batch statistics with its
  moving-average updates, the DPC concat's dropout), the softmax cross-entropy
  on upsampled logits plus slim's L2 terms, the poly learning rate (power 0.9),
  `MomentumOptimizer` (0.9) and the gradient multipliers (biases x2), with the
  update ops run before the total loss as `slim.learning.create_train_op` does.

  Args:
    config: As for `build_inference_graph`.
    batch: Static batch size.
    base_learning_rate, training_number_of_steps: The poly schedule's.
    ignore_label: Label value without loss.
    weight_decay: The L2 scale (`--weight_decay`).
    inject_keep_mask: Feed the DPC dropout's keep mask (`keep_mask`, bool, the
      concat's shape) instead of drawing it.
    seed: The graph's random seed (initial weights, dropout); set before any op,
      so the graph also runs under `tf.config.experimental.enable_op_determinism`.

  Returns:
    A `TrainingGraph`; `losses` holds total_loss, cross_entropy_loss,
    regularization_loss and learning_rate tensors.
  """
  crop_size = list(config['crop_size'])
  num_classes = config['outputs_to_num_classes']['semantic']
  graph = tf.Graph()
  with graph.as_default():
    tf.compat.v1.set_random_seed(seed)
    images = tf.compat.v1.placeholder(tf.float32, [batch] + crop_size + [3], name='images')
    labels = tf.compat.v1.placeholder(tf.int32, [batch] + crop_size + [1], name='labels')
    keep_mask = None
    if inject_keep_mask:
      size = [scale_dimension(c, 1. / config['output_stride']) for c in crop_size]
      channels = _DPC_DEPTH * len(config['dense_prediction_cell_config'])
      keep_mask = tf.compat.v1.placeholder(tf.bool, [batch] + size + [channels],
                                           name='keep_mask')
    with _training_mode(weight_decay, keep_mask):
      outputs = _forward(images, config)
    cross_entropy = _softmax_cross_entropy(outputs['logits'], labels, num_classes,
                                           ignore_label)
    regularization = tf.add_n(tf.compat.v1.losses.get_regularization_losses())
    global_step = tf.compat.v1.train.get_or_create_global_step()
    learning_rate = tf.compat.v1.train.polynomial_decay(
        base_learning_rate, global_step, training_number_of_steps, end_learning_rate=0,
        power=0.9)
    optimizer = tf.compat.v1.train.MomentumOptimizer(learning_rate, _MOMENTUM)
    update_ops = tf.group(*tf.compat.v1.get_collection(tf.compat.v1.GraphKeys.UPDATE_OPS))
    with tf.control_dependencies([update_ops]):
      total = tf.identity(cross_entropy + regularization, name='total_loss')
    grads_and_vars = optimizer.compute_gradients(total)
    grads_and_vars = [(g * 2.0 if 'biases' in v.op.name else g, v) for g, v in grads_and_vars]
    train_op = optimizer.apply_gradients(grads_and_vars, global_step=global_step)
    saver = tf.compat.v1.train.Saver(tf.compat.v1.global_variables())
  return TrainingGraph(graph, images, labels, keep_mask, train_op,
                       {'total_loss': total, 'cross_entropy_loss': cross_entropy,
                        'regularization_loss': regularization,
                        'learning_rate': learning_rate}, saver)


def restore(session, saver, checkpoint_prefix):
  """Restores every variable from an original-format (name-keyed) TF1 checkpoint."""
  with session.graph.as_default():  # The Saver may add its restore ops now.
    saver.restore(session, checkpoint_prefix)


def run_latency(session, fetches, images_placeholder, images, repeats=10, warmup=1):
  """Median seconds of one `session.run` of `fetches` on `images`.

  A callable avoids the per-call feed/fetch parsing of `session.run`, so the
  timing is the graph's, as the original's serving path would see it.
  """
  run = session.make_callable(fetches, feed_list=[images_placeholder])
  return timing.median_seconds(lambda: run(images), repeats, warmup=warmup)
