"""Model options with the original flag names, validated, and serialisable to JSON.

The fields are the original `common.ModelOptions` plus the flags that shape the
graph (`dense_prediction_cell_json`, `fine_tune_batch_norm`, ...). Every
validation error names the flag at fault.
"""

import dataclasses
import json
from typing import Any, Sequence

from deeplab_dpc import cell as cell_lib
from deeplab_dpc import constants

XCEPTION_VARIANTS = ('xception_41', 'xception_65', 'xception_71')
MODEL_VARIANTS = XCEPTION_VARIANTS + ('mobilenet_v2',)
OUTPUT_STRIDES = (8, 16, 32)


def _int_list(value, flag: str) -> tuple[int, ...] | None:
  """Accepts None, an int, a comma string '129,161' or a sequence of ints."""
  if value is None or value == '' or value == []:
    return None
  if isinstance(value, str):
    parts = [p.strip() for p in value.split(',') if p.strip()]
  elif isinstance(value, (int, float)):
    parts = [value]
  else:
    parts = list(value)
  out = []
  for part in parts:
    if isinstance(part, bool) or (isinstance(part, float) and not part.is_integer()):
      raise ValueError(f'--{flag} must be a list of integers, got {value!r}')
    try:
      out.append(int(part))
    except (TypeError, ValueError):
      raise ValueError(f'--{flag} must be a list of integers, got {value!r}') from None
  return tuple(out)


@dataclasses.dataclass(frozen=True)
class ModelOptions:
  """What the graph is made of. Field names are the original flags.

  Attributes:
    num_classes: Classes of the `semantic` output (`outputs_to_num_classes`).
    model_variant: xception_41, xception_65, xception_71 or mobilenet_v2.
    crop_size: (height, width) the model is built for; sizes of pooling
      kernels and resizes derive from it.
    output_stride: 8, 16 or 32.
    atrous_rates: ASPP rates (e.g. (6, 12, 18)), or None.
    multi_grid: Rates of exit_flow/block2's three units' convs, or None.
    decoder_output_stride: Strides of the DeepLabv3+ decoder stages, or None.
    decoder_use_separable_conv: Split separable convs in the decoder.
    dense_prediction_cell_json: Path of the DPC cell file ('' for ASPP).
    dense_prediction_cell_config: The cell itself (original JSON form); read
      from `dense_prediction_cell_json` by `create`, kept so saved options are
      self-contained.
    add_image_level_feature: ASPP image pooling branch.
    image_pooling_crop_size: (h, w) crop the image pooling kernel derives from,
      or None for `crop_size`.
    image_pooling_stride: Stride of that pooling.
    aspp_with_batch_norm: Build ASPP (else raw features, rates go to logits).
    aspp_with_separable_conv: Split separable ASPP convs.
    logits_kernel_size: Kernel of the logits conv.
    depth_multiplier: MobileNet-v2 width multiplier.
    divisible_by: MobileNet-v2 channel rounding (None: 8 for 1.0, else 1).
    merge_method: 'max' or 'avg' to merge an image pyramid's logits.
    prediction_with_upsampled_logits: Upsample logits before argmax.
    fine_tune_batch_norm: Train batch-norm statistics.
    sync_batch_norm: Synchronise batch-norm statistics across replicas.
    weight_decay: L2 on the weights the original regularises.
    batch_norm_decay: Moving-average decay of every batch norm; None keeps the
      original's (0.9997; 0.997 in MobileNet-v2's backbone). Short runs need
      a lower decay for usable moving statistics.
  """
  num_classes: int
  model_variant: str = 'xception_65'
  crop_size: tuple[int, int] = (513, 513)
  output_stride: int = 16
  atrous_rates: tuple[int, ...] | None = None
  multi_grid: tuple[int, int, int] | None = None
  decoder_output_stride: tuple[int, ...] | None = None
  decoder_use_separable_conv: bool = True
  dense_prediction_cell_json: str = ''
  dense_prediction_cell_config: tuple[dict[str, Any], ...] | None = None
  add_image_level_feature: bool = True
  image_pooling_crop_size: tuple[int, int] | None = None
  image_pooling_stride: tuple[int, int] = (1, 1)
  aspp_with_batch_norm: bool = True
  aspp_with_separable_conv: bool = True
  logits_kernel_size: int = 1
  depth_multiplier: float = 1.0
  divisible_by: int | None = None
  merge_method: str = 'max'
  prediction_with_upsampled_logits: bool = True
  fine_tune_batch_norm: bool = True
  sync_batch_norm: bool = False
  weight_decay: float = constants.WEIGHT_DECAY
  batch_norm_decay: float | None = None

  @classmethod
  def create(cls, **kwargs) -> 'ModelOptions':
    """Builds validated options from flag-like values.

    Lists may be comma strings ('129,161'), a cell JSON path is read and
    validated; unknown keys are an error naming them.

    Raises:
      ValueError / FileNotFoundError naming the flag at fault.
    """
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(kwargs) - names)
    if unknown:
      raise ValueError(f'unknown model option(s): {", ".join(unknown)}')
    for key in ('crop_size', 'atrous_rates', 'multi_grid', 'decoder_output_stride',
                'image_pooling_crop_size', 'image_pooling_stride'):
      if key in kwargs:
        kwargs[key] = _int_list(kwargs[key], key)
    if kwargs.get('dense_prediction_cell_json') and not kwargs.get(
        'dense_prediction_cell_config'):
      branches = cell_lib.load_cell(kwargs['dense_prediction_cell_json'])
      kwargs['dense_prediction_cell_config'] = cell_lib.cell_to_json(branches)
    if kwargs.get('dense_prediction_cell_config') is not None:
      kwargs['dense_prediction_cell_config'] = tuple(kwargs['dense_prediction_cell_config'])
    if kwargs.get('image_pooling_stride') is None:
      kwargs.pop('image_pooling_stride', None)
    options = cls(**kwargs)
    options.validate()
    return options

  @property
  def uses_dense_prediction_cell(self) -> bool:
    return self.dense_prediction_cell_config is not None

  @property
  def cell(self) -> tuple[cell_lib.Branch, ...] | None:
    """The parsed DPC cell, or None for the ASPP head."""
    if self.dense_prediction_cell_config is None:
      return None
    return cell_lib.parse_cell(list(self.dense_prediction_cell_config),
                               source=self.dense_prediction_cell_json or
                               'dense_prediction_cell_config')

  @property
  def logits_output_stride(self) -> int:
    """Stride of the logits: the finest decoder stage, else the output stride."""
    if self.decoder_output_stride:
      return min(self.decoder_output_stride)
    return self.output_stride

  def validate(self) -> None:
    """Checks every field; raises ValueError naming the flag at fault."""
    if self.model_variant not in MODEL_VARIANTS:
      raise ValueError(f'--model_variant must be one of {", ".join(MODEL_VARIANTS)}, '
                       f'got {self.model_variant!r}')
    if (not isinstance(self.num_classes, int) or isinstance(self.num_classes, bool) or
        self.num_classes < 1):
      raise ValueError(f'--num_classes must be an integer >= 1, got {self.num_classes!r}')
    if self.output_stride not in OUTPUT_STRIDES:
      raise ValueError(f'--output_stride must be 8, 16 or 32, got {self.output_stride!r}')
    _check_pair(self.crop_size, 'crop_size')
    if self.image_pooling_crop_size is not None:
      _check_pair(self.image_pooling_crop_size, 'image_pooling_crop_size')
    _check_pair(self.image_pooling_stride, 'image_pooling_stride')
    if self.multi_grid is not None and len(self.multi_grid) != 3:
      raise ValueError(f'--multi_grid needs 3 rates, got {list(self.multi_grid)}')
    if self.multi_grid is not None and self.model_variant not in XCEPTION_VARIANTS:
      raise ValueError('--multi_grid applies to the xception variants only')
    if self.atrous_rates is not None and any(r < 1 for r in self.atrous_rates):
      raise ValueError(f'--atrous_rates must be positive, got {list(self.atrous_rates)}')
    if self.decoder_output_stride is not None:
      for stride in self.decoder_output_stride:
        if stride not in (4, 8, 16) or stride >= self.output_stride:
          raise ValueError(
              f'--decoder_output_stride values must be 4, 8 or 16 and below '
              f'--output_stride={self.output_stride}, got {list(self.decoder_output_stride)}')
    if ((self.aspp_with_batch_norm or self.atrous_rates is None) and
        self.logits_kernel_size != 1):
      raise ValueError('--logits_kernel_size must be 1 when atrous_rates is None or '
                       f'aspp_with_batch_norm is set, got {self.logits_kernel_size}')
    if self.merge_method not in ('max', 'avg'):
      raise ValueError(f'--merge_method must be max or avg, got {self.merge_method!r}')
    if self.batch_norm_decay is not None and not 0.0 < self.batch_norm_decay < 1.0:
      raise ValueError(f'--batch_norm_decay must be in (0, 1), got {self.batch_norm_decay}')
    if self.depth_multiplier <= 0:
      raise ValueError(f'--depth_multiplier must be positive, got {self.depth_multiplier}')
    if self.dense_prediction_cell_config is not None:
      self.cell  # pylint: disable=pointless-statement  (parses and validates)

  def to_dict(self) -> dict[str, Any]:
    """JSON-ready dict (tuples become lists)."""
    out = dataclasses.asdict(self)
    for key, value in out.items():
      if isinstance(value, tuple):
        out[key] = list(value)
    return out

  def to_json(self) -> str:
    return json.dumps(self.to_dict(), indent=1, sort_keys=True)

  @classmethod
  def from_dict(cls, data: dict[str, Any]) -> 'ModelOptions':
    return cls.create(**dict(data))

  @classmethod
  def from_json(cls, text: str) -> 'ModelOptions':
    return cls.from_dict(json.loads(text))

  def replace(self, **changes) -> 'ModelOptions':
    """A copy with some fields changed, validated."""
    return ModelOptions.from_dict({**self.to_dict(), **changes})


def _check_pair(value: Sequence[int] | None, flag: str) -> None:
  if value is None or len(value) != 2 or any(v < 1 for v in value):
    raise ValueError(f'--{flag} must be two positive integers "height,width", got {value!r}')
