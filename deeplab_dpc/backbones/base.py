"""What every backbone shares: input scaling, name scopes, the output-stride walk."""

import contextlib

import keras
from keras import ops

FEATURES = 'features'


def preprocess_zero_mean_unit_range(images):
  """The original feature extractors' input mapping: [0, 255] -> [-1, 1]."""
  return (2.0 / 255.0) * ops.cast(images, 'float32') - 1.0


@contextlib.contextmanager
def nested_name_scope(path: str):
  """Opens one Keras name scope per component of an original scope path.

  Layers built inside get variable paths under `path`, so `entry_flow/block1/
  unit_1` + a layer `xception_module` gives the original checkpoint keys.
  """
  with contextlib.ExitStack() as stack:
    for part in path.split('/'):
      stack.enter_context(keras.name_scope(part))
    yield


def output_stride_walk(unit_strides, output_stride):
  """Stride and atrous rate of each unit, as the original `stack_blocks_dense`.

  Once the running stride reaches `output_stride`, later units run with stride 1
  at the current rate, and the rate grows by their nominal stride.

  Args:
    unit_strides: Nominal stride of every unit in order.
    output_stride: Target stride of the walk (relative to its input), or None.

  Returns:
    A list of (stride, rate) per unit.

  Raises:
    ValueError: if the target cannot be reached.
  """
  current_stride, rate, out = 1, 1, []
  for stride in unit_strides:
    if output_stride is not None and current_stride > output_stride:
      raise ValueError('The target output_stride cannot be reached.')
    if output_stride is not None and current_stride == output_stride:
      out.append((1, rate))
      rate *= stride
    else:
      out.append((stride, 1))
      current_stride *= stride
  if output_stride is not None and current_stride != output_stride:
    raise ValueError('The target output_stride cannot be reached.')
  return out
