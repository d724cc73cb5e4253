"""The original release's model flags (`common.py`), shared by every CLI.

Multi-valued flags take the original repeated form (`--crop_size=513
--crop_size=513`) and comma lists (`--crop_size=513,513`).
"""

from absl import flags

from deeplab_dpc import cli
from deeplab_dpc.options import ModelOptions

FLAGS = flags.FLAGS

# The original common.py's --dataset default.
DEFAULT_DATASET = 'pascal_voc_seg'


def define_model_flags(model_variant='mobilenet_v2', output_stride=16):
  """Defines the model flags with the original names and defaults.

  Args:
    model_variant: Default of --model_variant (the original's common default).
    output_stride: Default of --output_stride (each original CLI sets its own).
  """
  with cli.flag_group('Model'):
    flags.DEFINE_string('model_variant', model_variant, 'DeepLab model variant: '
                        'xception_41, xception_65, xception_71 or mobilenet_v2.')
    flags.DEFINE_integer('output_stride', output_stride,
                         'Ratio of input to output spatial resolution (8, 16 or 32).')
    flags.DEFINE_multi_string('atrous_rates', None, 'ASPP atrous rates, e.g. 6,12,18.')
    flags.DEFINE_multi_string('multi_grid', None,
                              'Rates of the three convs of exit_flow/block2, e.g. 1,2,4.')
    flags.DEFINE_multi_string('decoder_output_stride', None,
                              'Decoder stage strides, e.g. 4; unset: no decoder.')
    flags.DEFINE_boolean('decoder_use_separable_conv', True,
                         'Split separable convs in the decoder.')
    flags.DEFINE_string('dense_prediction_cell_json', '',
                        'A dense prediction cell JSON file; unset: ASPP head.')
    flags.DEFINE_boolean('add_image_level_feature', True, 'ASPP image pooling branch.')
    flags.DEFINE_multi_string('image_pooling_crop_size', None,
                              'Crop size the image pooling kernel derives from.')
    flags.DEFINE_multi_string('image_pooling_stride', ['1', '1'], 'Image pooling stride.')
    flags.DEFINE_boolean('aspp_with_batch_norm', True, 'Batch norm in ASPP.')
    flags.DEFINE_boolean('aspp_with_separable_conv', True, 'Split separable ASPP convs.')
    flags.DEFINE_integer('logits_kernel_size', 1, 'Kernel of the logits conv.')
    flags.DEFINE_float('depth_multiplier', 1.0, 'MobileNet-v2 width multiplier.')
    flags.DEFINE_integer('divisible_by', None, 'MobileNet-v2 channel rounding.')
    flags.DEFINE_enum('merge_method', 'max', ['max', 'avg'], 'Image pyramid merge.')
    flags.DEFINE_float('batch_norm_decay', None, 'Batch-norm moving-average decay (unset: '
                       'the original 0.9997, 0.997 in the MobileNet-v2 backbone).')
    flags.DEFINE_boolean('prediction_with_upsampled_logits', True,
                         'Upsample logits before the argmax.')


def dataset_flag_help(default: str) -> str:
  """The `--dataset` help of every CLI: built-in names, 'custom' and the default."""
  from deeplab_dpc.data import descriptors  # pylint: disable=g-import-not-at-top
  return ('Dataset: ' + ', '.join(descriptors.DATASET_NAMES) + f', or '
          f'{descriptors.CUSTOM_DATASET} (the dataset_info.json of --dataset_dir, written by '
          'datasets/build_custom_data.py). Unset: custom when --dataset_dir holds a '
          f'dataset_info.json, else {default}.')


def define_dataset_flags():
  """The original's dataset and resizing flags, shared by train, eval, vis and export.

  --dataset is unset by default (`dataset_name` resolves it): the original's
  'pascal_voc_seg', or the custom dataset of a --dataset_dir with a
  `dataset_info.json`.
  """
  with cli.flag_group('Data'):
    flags.DEFINE_string('dataset', None, dataset_flag_help(DEFAULT_DATASET))
    flags.DEFINE_string('dataset_dir', None, 'Folder of the TFRecord shards (or tfds:<name>); '
                        'a folder with a dataset_info.json needs no --dataset.')
    flags.DEFINE_integer('min_resize_value', None, 'Resize the smaller image side to this.')
    flags.DEFINE_integer('max_resize_value', None, 'Maximum size of the larger image side.')
    flags.DEFINE_integer('resize_factor', None, 'Resized sides are multiples of it plus one.')


def dataset_name(default: str = DEFAULT_DATASET) -> str:
  """The dataset --dataset and --dataset_dir name (`descriptors.resolve_dataset_name`).

  Args:
    default: An unset --dataset without a `dataset_info.json` (a CLI with
      its own --dataset flag passes its own default).

  Raises:
    FileNotFoundError: --dataset=custom without a dataset_info.json (named).
  """
  from deeplab_dpc.data import descriptors  # pylint: disable=g-import-not-at-top
  return descriptors.resolve_dataset_name(FLAGS.dataset, FLAGS.dataset_dir,
                                          default)


def dataset_descriptor(default: str = DEFAULT_DATASET):
  """The `DatasetDescriptor` of --dataset and --dataset_dir (see `dataset_name`)."""
  from deeplab_dpc.data import descriptors  # pylint: disable=g-import-not-at-top
  return descriptors.get_dataset_descriptor(dataset_name(default), FLAGS.dataset_dir)


def num_classes_and_dataset(flag: str = 'num_classes'):
  """A --num_classes flag checked against the dataset of --dataset / --dataset_dir.

  With a custom dataset (a --dataset_dir holding `dataset_info.json`) or a built-in
  one named by --dataset, the class count is the dataset's and --num_classes may be
  left out; a --num_classes given with it must agree. With neither, the flag's value
  stands, as in the original export_model.py (default 21).

  Returns:
    (number of classes, the dataset's `DatasetDescriptor` or None without one).

  Raises:
    ValueError: --num_classes is below 1, or disagrees with the dataset (both numbers
      named).
    FileNotFoundError: --dataset=custom without a dataset_info.json.
  """
  value, given = getattr(FLAGS, flag), FLAGS[flag].present
  if value is not None and value < 1:
    raise ValueError(f'--{flag} must be an integer >= 1, got {value}')
  from deeplab_dpc.data import descriptors  # pylint: disable=g-import-not-at-top
  name = dataset_name()
  if name != descriptors.CUSTOM_DATASET and not FLAGS.dataset:
    return value, None
  descriptor = descriptors.get_dataset_descriptor(name, FLAGS.dataset_dir)
  if given and value != descriptor.num_classes:
    raise ValueError(f'--{flag}={value} but {descriptor.flag} has {descriptor.num_classes} '
                     f'classes: leave out --{flag} or give {descriptor.num_classes}')
  return descriptor.num_classes, descriptor


def multi_ints(values, flag: str) -> list[int] | None:
  """Joins a repeated / comma-list integer flag; ValueError naming the flag."""
  if not values:
    return None
  parts = [p.strip() for v in values for p in str(v).split(',') if p.strip()]
  try:
    return [int(p) for p in parts]
  except ValueError:
    raise ValueError(f'--{flag} must be integers (e.g. 129,161), got {",".join(values)}') \
        from None


def multi_floats(values, flag: str) -> list[float] | None:
  """Joins a repeated / comma-list float flag; ValueError naming the flag."""
  if not values:
    return None
  parts = [p.strip() for v in values for p in str(v).split(',') if p.strip()]
  try:
    return [float(p) for p in parts]
  except ValueError:
    raise ValueError(f'--{flag} must be numbers (e.g. 0.75,1.0), got {",".join(values)}') \
        from None


def crop_size(values, flag: str) -> tuple[int, int]:
  """A "height,width" flag (comma list or repeated) as a pair; errors name the flag."""
  sizes = multi_ints(values, flag)
  if not sizes or len(sizes) != 2 or min(sizes) < 1:
    raise ValueError(f'--{flag} must be two positive integers "height,width", '
                     f'got {",".join(values or [])!r}')
  return sizes[0], sizes[1]


def model_options_from_flags(num_classes: int, crop_size, **overrides) -> ModelOptions:
  """Validated `ModelOptions` from the model flags.

  Args:
    num_classes: Number of classes (from --num_classes or the dataset).
    crop_size: (height, width) the model is built for.
    **overrides: Further option fields (e.g. fine_tune_batch_norm).
  """
  return ModelOptions.create(
      num_classes=num_classes,
      crop_size=crop_size,
      model_variant=FLAGS.model_variant,
      output_stride=FLAGS.output_stride,
      atrous_rates=multi_ints(FLAGS.atrous_rates, 'atrous_rates'),
      multi_grid=multi_ints(FLAGS.multi_grid, 'multi_grid'),
      decoder_output_stride=multi_ints(FLAGS.decoder_output_stride, 'decoder_output_stride'),
      decoder_use_separable_conv=FLAGS.decoder_use_separable_conv,
      dense_prediction_cell_json=FLAGS.dense_prediction_cell_json,
      add_image_level_feature=FLAGS.add_image_level_feature,
      image_pooling_crop_size=multi_ints(FLAGS.image_pooling_crop_size,
                                         'image_pooling_crop_size'),
      image_pooling_stride=multi_ints(FLAGS.image_pooling_stride, 'image_pooling_stride'),
      aspp_with_batch_norm=FLAGS.aspp_with_batch_norm,
      aspp_with_separable_conv=FLAGS.aspp_with_separable_conv,
      logits_kernel_size=FLAGS.logits_kernel_size,
      depth_multiplier=FLAGS.depth_multiplier,
      divisible_by=FLAGS.divisible_by,
      merge_method=FLAGS.merge_method,
      prediction_with_upsampled_logits=FLAGS.prediction_with_upsampled_logits,
      batch_norm_decay=FLAGS.batch_norm_decay,
      **overrides)
