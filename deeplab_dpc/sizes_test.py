"""The sizes the original derives from the crop size."""

import pytest

from deeplab_dpc import sizes

_GRID_SIZES = (1, 2, 4, 8)


def test_scale_dimension_examples():
  # From the original's graphs: crop -> features at each stride.
  assert sizes.scale_dimension(129, 1 / 16) == 9
  assert sizes.scale_dimension(161, 1 / 16) == 11
  assert sizes.scale_dimension(129, 1 / 4) == 33
  assert sizes.scale_dimension(97, 1 / 8) == 13
  assert sizes.scale_dimension(513, 1 / 16) == 33
  assert sizes.scale_dimension(129, 0.75) == 97


def _original_kernel(crop, output_stride, grid):
  # The original's float formula, written out independently of the module.
  return int((crop - 1) * (1. / (output_stride * grid)) + 1)


@pytest.mark.parametrize('output_stride', [8, 16])
@pytest.mark.parametrize('crop', [513, 769])
def test_pooling_kernel_from_feature_size_matches_crop_formula(crop, output_stride):
  feature = sizes.scale_dimension(crop, 1. / output_stride)
  assert feature == {(513, 8): 65, (513, 16): 33, (769, 8): 97, (769, 16): 49}[crop, output_stride]
  for grid in _GRID_SIZES:
    kernel = sizes.pyramid_pooling_kernel(feature, grid)
    assert kernel == _original_kernel(crop, output_stride, grid)
    assert kernel == sizes.pyramid_pooling_kernel(
        feature, grid, image_pooling_crop_size=crop, output_stride=output_stride)
  assert sizes.pyramid_pooling_kernel(feature, 1) == feature  # grid 1 pools everything


def test_pooling_kernel_formula_holds_for_every_crop():
  for output_stride in (4, 8, 16, 32):
    for crop in range(output_stride + 1, 1300):
      feature = sizes.scale_dimension(crop, 1. / output_stride)
      for grid in _GRID_SIZES:
        assert sizes.pyramid_pooling_kernel(feature, grid) == _original_kernel(
            crop, output_stride, grid), (crop, output_stride, grid)


@pytest.mark.parametrize('args, field', [
    ((0, 1), 'feature_size'), ((33, 0), 'grid'), ((33, 2.0), 'grid'),
    ((33, 2, 0), 'image_pooling_crop_size')])
def test_pooling_kernel_bad_arguments(args, field):
  with pytest.raises(ValueError, match=field):
    if len(args) == 3:
      sizes.pyramid_pooling_kernel(*args[:2], image_pooling_crop_size=args[2])
    else:
      sizes.pyramid_pooling_kernel(*args)
