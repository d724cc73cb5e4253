"""Flags shared by eval.py and vis.py: the original release's names and defaults.

Only flag definition and parsing live here; the work is in `evaluator` and
`visualizer`. List flags take comma lists or the original repeated form.
"""

import os

from absl import flags

from deeplab_dpc import checkpoints
from deeplab_dpc import cli
from deeplab_dpc import fileio
from deeplab_dpc import flags as model_flags
from deeplab_dpc.evaluation import evaluator
from deeplab_dpc.evaluation import watch

FLAGS = flags.FLAGS


def define_common_flags() -> None:
  """Checkpoint, dataset, pyramid and resizing flags (the original's, plus two)."""
  model_flags.define_model_flags(output_stride=16)
  model_flags.define_dataset_flags()
  with cli.flag_group('Checkpoints'):
    flags.DEFINE_string('checkpoint_dir', None,
                        'Directory of model checkpoints (a train.py --train_logdir).')
    flags.DEFINE_string('checkpoint_path', None,
                        'One checkpoint to use instead of watching --checkpoint_dir: a '
                        'prefix (ours, e.g. LOG/ckpt-100, or an original TF1 model.ckpt).')
    flags.DEFINE_integer('eval_interval_secs', 60 * 5,
                         'Minimum seconds between the starts of two evaluations when '
                         'watching.')
    flags.DEFINE_float('checkpoint_timeout_secs', 0,
                       'Stop waiting for a (new) checkpoint after this many seconds; 0 = '
                       'wait forever when watching, do not wait when '
                       '--max_number_of_evaluations=1.')
  with cli.flag_group('Inference'):
    flags.DEFINE_multi_string('eval_scales', ['1.0'],
                              'Image pyramid scales, e.g. 0.5,0.75,1.0,1.25,1.5,1.75.')
    flags.DEFINE_boolean('add_flipped_images', False, 'Add left-right flipped images.')
    flags.DEFINE_boolean('show_progress', True, 'Progress with images/s and ETA.')
    flags.DEFINE_integer('quantize_delay_step', -1,
                         'The original quantized-eval switch; quantization is not '
                         'supported.')


def check_common_flags() -> None:
  """Flag combinations the original rejects or we do not support; ValueError naming them."""
  if FLAGS.quantize_delay_step >= 0:
    raise ValueError('--quantize_delay_step: quantized evaluation is not supported here')
  if not FLAGS.checkpoint_dir and not FLAGS.checkpoint_path:
    raise ValueError('--checkpoint_dir (watched) or --checkpoint_path (one checkpoint) '
                     'is required')
  if FLAGS.eval_interval_secs < 0:
    raise ValueError(f'--eval_interval_secs must be >= 0, got {FLAGS.eval_interval_secs}')


def check_checkpoint_now(max_count: int) -> None:
  """Fails early when a single-shot run has nothing to evaluate (see `watch.run_on_checkpoints`)."""
  if FLAGS.checkpoint_path:
    watch.resolve_checkpoint(FLAGS.checkpoint_path, 'checkpoint_path')
  else:
    watch.check_checkpoint_dir(FLAGS.checkpoint_dir, max_count, FLAGS.checkpoint_timeout_secs)
    if (max_count == 1 and FLAGS.checkpoint_timeout_secs <= 0
        and watch.latest_checkpoint(FLAGS.checkpoint_dir) is None):
      raise FileNotFoundError(watch.no_checkpoint_message(FLAGS.checkpoint_dir))


def check_checkpoint_classes() -> None:
  """Refuses, before the model is built, a checkpoint trained for another class count.

  --checkpoint_path: its logits' shape. --checkpoint_dir: the `model_options.json`
  train.py wrote there, else its latest checkpoint's logits (none yet: nothing
  to check until one appears, and then loading it names any mismatch).

  Raises:
    ValueError: Naming both class counts, the flag (or file) and the dataset.
  """
  descriptor = model_flags.dataset_descriptor()
  if FLAGS.checkpoint_path:
    path = watch.resolve_checkpoint(FLAGS.checkpoint_path, 'checkpoint_path')
    checkpoints.check_num_classes(path, descriptor.num_classes, 'checkpoint_path',
                                  descriptor.flag)
    return
  from deeplab_dpc.training import trainer  # pylint: disable=g-import-not-at-top
  options_file = os.path.join(FLAGS.checkpoint_dir, trainer.OPTIONS_FILE)
  if fileio.isfile(options_file):
    try:
      trained = trainer.read_options(FLAGS.checkpoint_dir).num_classes
    except (OSError, ValueError, TypeError, KeyError):
      trained = None  # Unreadable: the checkpoint itself is checked when loaded.
    if trained is not None and trained != descriptor.num_classes:
      raise ValueError(f'--checkpoint_dir={FLAGS.checkpoint_dir} holds a model of {trained} '
                       f'classes ({options_file}) but {descriptor.flag} has '
                       f'{descriptor.num_classes}')
    return
  latest = watch.latest_checkpoint(FLAGS.checkpoint_dir)
  if latest is not None:
    checkpoints.check_num_classes(latest, descriptor.num_classes, 'checkpoint_dir',
                                  descriptor.flag)


def colormap_type() -> str:
  """vis.py's --colormap_type: unset, a custom dataset's own colours ('') win.

  The flag keeps the original's 'pascal' default for the built-in datasets; a
  folder with a `dataset_info.json` colormap is drawn in its colours unless the
  flag is given.
  """
  if FLAGS['colormap_type'].present:
    return FLAGS.colormap_type
  if model_flags.dataset_descriptor().colors is not None:
    return ''
  return FLAGS.colormap_type


def crop_size(flag: str) -> list[int]:
  """The [height, width] of a crop-size flag, checked."""
  return list(model_flags.crop_size(getattr(FLAGS, flag), flag))


def eval_config(split: str, batch_size: int) -> evaluator.EvalConfig:
  """The `EvalConfig` of the common flags for `split` and `batch_size`."""
  return evaluator.EvalConfig(
      dataset=model_flags.dataset_name(), dataset_dir=FLAGS.dataset_dir, split=split,
      batch_size=batch_size,
      eval_scales=model_flags.multi_floats(FLAGS.eval_scales, 'eval_scales') or [],
      add_flipped_images=FLAGS.add_flipped_images,
      min_resize_value=FLAGS.min_resize_value, max_resize_value=FLAGS.max_resize_value,
      resize_factor=FLAGS.resize_factor)


def model_options(crop_flag: str):
  """Model options of the model flags at the crop size of `crop_flag`."""
  num_classes = model_flags.dataset_descriptor().num_classes
  return model_flags.model_options_from_flags(num_classes, crop_size(crop_flag))
