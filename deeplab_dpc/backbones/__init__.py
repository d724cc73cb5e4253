"""Backbones by original `model_variant` name."""

from deeplab_dpc.backbones import xception
from deeplab_dpc.backbones.base import FEATURES


def decoder_end_points(model_variant: str) -> dict[int, str]:
  """End point the decoder reads for each decoder output stride."""
  if model_variant in xception.DECODER_END_POINTS:
    return xception.DECODER_END_POINTS[model_variant]
  from deeplab_dpc.backbones import mobilenet_v2  # pylint: disable=g-import-not-at-top
  return mobilenet_v2.DECODER_END_POINTS


def build_backbone(options, end_points=()):
  """The backbone layer of `options.model_variant` (a `ModelOptions`).

  Its call returns a dict with `features` and each requested end point.
  """
  common = dict(output_stride=options.output_stride, end_points=tuple(end_points),
                fine_tune_batch_norm=options.fine_tune_batch_norm,
                sync_batch_norm=options.sync_batch_norm,
                weight_decay=options.weight_decay,
                batch_norm_decay=options.batch_norm_decay)
  if options.model_variant in xception.XCEPTION_BLOCKS:
    return xception.Xception(options.model_variant, multi_grid=options.multi_grid, **common)
  from deeplab_dpc.backbones import mobilenet_v2  # pylint: disable=g-import-not-at-top
  return mobilenet_v2.MobileNetV2(depth_multiplier=options.depth_multiplier,
                                  divisible_by=options.divisible_by, **common)


__all__ = ['FEATURES', 'build_backbone', 'decoder_end_points']
