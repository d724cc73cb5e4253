"""Multiply-adds and parameter counts of a model, as the paper's tables count them.

Multiply-adds are those of the convolutions (regular and depthwise) in the traced
inference graph, the same analytic count as the golden `stats.json`.
"""

import numpy as np


def multiply_adds(model, batch_size: int = 1) -> dict[str, int]:
  """Counts conv multiply-adds of one inference at the model's crop size.

  Returns:
    {'Conv2D': n, 'DepthwiseConv2dNative': n, 'total': n}.
  """
  height, width = model.options.crop_size
  return function_multiply_adds(lambda x: model(x, training=False),
                                [batch_size, height, width, 3])


def function_multiply_adds(fn, input_shape) -> dict[str, int]:
  """Counts the conv multiply-adds of `fn` on one float32 input of `input_shape`.

  Returns:
    {'Conv2D': n, 'DepthwiseConv2dNative': n, 'total': n}.
  """
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  graph = tf.function(fn).get_concrete_function(
      tf.TensorSpec(list(input_shape), tf.float32)).graph
  counts = {'Conv2D': 0, 'DepthwiseConv2dNative': 0}
  for op in graph.get_operations():
    if op.type not in counts:
      continue
    output = op.outputs[0]
    # Atrous convs run on a space-to-batch padded input; count the cropped
    # output they stand for, as an analytic count does.
    for consumer in output.consumers():
      if consumer.type == 'BatchToSpaceND':
        output = consumer.outputs[0]
    outputs = int(np.prod(output.shape.as_list()))
    kernel = op.inputs[1].shape.as_list()  # [kh, kw, in, out or multiplier]
    per_output = kernel[0] * kernel[1] * (kernel[2] if op.type == 'Conv2D' else 1)
    counts[op.type] += outputs * per_output
  counts['total'] = sum(counts.values())
  return counts


def trainable_parameters(model) -> int:
  """Number of trainable weights (batch-norm statistics excluded)."""
  return int(sum(np.prod(v.shape) for v in model.trainable_weights))
