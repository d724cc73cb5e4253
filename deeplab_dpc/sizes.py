"""Sizes the original derives from the crop size (pure Python, no TensorFlow).

Shared by the model layers and the search space's cost model.
"""

from typing import Any


def scale_dimension(dim: int, scale: float) -> int:
  """The original `scale_dimension`: `int((dim - 1) * scale + 1)`.

  With `dim = k * s + 1` every align-corners resize between the scales is exact.
  """
  return int((dim - 1) * scale + 1)


def positive_int(value: Any, name: str) -> int:
  """`value` if it is an int >= 1, else a ValueError naming `name`."""
  if not isinstance(value, int) or isinstance(value, bool) or value < 1:
    raise ValueError(f'{name} must be a positive int, got {value!r}')
  return value


def pyramid_pooling_kernel(feature_size: int, grid: int, *,
                           image_pooling_crop_size: int | None = None,
                           output_stride: int = 16) -> int:
  """Average-pooling kernel of a pyramid pooling along one dimension.

  The original sets it to `scale_dimension(crop, 1 / (output_stride * grid))`
  from the crop size. From the feature size `F = scale_dimension(crop, 1 /
  output_stride)` it is `(F - 1) // grid + 1`, for every crop and output stride,
  since `floor(floor(x / s) / g) = floor(x / (s * g))` for integers (and
  `(crop - 1) / (output_stride * grid)` is exact in floating point for
  power-of-two strides and grids). When the pooling uses its own crop size (the
  original's `image_pooling_crop_size`, e.g. the training crop at evaluation), the
  kernel comes from that crop and the output stride.

  Args:
    feature_size: Feature height or width.
    grid: g_h or g_w.
    image_pooling_crop_size: Crop height or width for the pooling, if not the
      one the features come from.
    output_stride: Output stride of the features; used only with
      `image_pooling_crop_size`.

  Returns:
    The kernel size; without `image_pooling_crop_size` it is at most
    `feature_size` (the pooling is VALID with stride 1).

  Raises:
    ValueError: if a size, the grid or the output stride is not a positive int.
  """
  feature_size = positive_int(feature_size, 'feature_size')
  grid = positive_int(grid, 'grid')
  if image_pooling_crop_size is None:
    return (feature_size - 1) // grid + 1
  image_pooling_crop_size = positive_int(image_pooling_crop_size, 'image_pooling_crop_size')
  output_stride = positive_int(output_stride, 'output_stride')
  return scale_dimension(image_pooling_crop_size, 1. / (output_stride * grid))
