"""Evaluating DeepLab checkpoints on a dataset split: mIOU, per-class IoU, summaries.

As the original `eval.py`: the model is built at the eval crop size, every image
of the split is padded to it (bottom/right, mean pixel; labels with the ignore
label, so padded pixels never count), predicted single-scale or with the image
pyramid and flips (`model.predict`), and a confusion matrix is accumulated over
the pixels whose label is not the ignore label. Results go to stdout as a table
with class names, to `<eval_logdir>/metrics.json` (and `metrics-<step>.json`), and
to TensorBoard under the original tags `eval/miou_<scales>[_flipped]_overall` and
`eval/miou_<scales>[_flipped]_class_<i>`.
"""

import dataclasses
import json
import math
import os
import struct
from typing import Callable, Optional, Sequence

from absl import logging
import numpy as np
import tensorflow as tf

from deeplab_dpc import checkpoints
from deeplab_dpc import fileio
from deeplab_dpc import model as model_lib
from deeplab_dpc.data import descriptors
from deeplab_dpc.data import pipeline
from deeplab_dpc.data import tfds_source
from deeplab_dpc.evaluation import metrics
from deeplab_dpc.evaluation import progress as progress_lib
from deeplab_dpc.evaluation import watch

METRICS_FILE = 'metrics.json'
STEP_METRICS_FILE = 'metrics-%d.json'


@dataclasses.dataclass(frozen=True)
class EvalConfig:
  """What to evaluate on and how; field names follow the original flags.

  Attributes:
    dataset: Dataset name (`--dataset`; 'custom' reads `dataset_dir/dataset_info.json`).
    dataset_dir: TFRecord folder or 'tfds:<name>' (`--dataset_dir`).
    split: Split to evaluate (`--eval_split`).
    batch_size: Images per forward pass (`--eval_batch_size`).
    eval_scales: Image pyramid scales (`--eval_scales`).
    add_flipped_images: Also predict left-right flipped images (`--add_flipped_images`).
    min_resize_value: Resize the smaller side to this first (`--min_resize_value`).
    max_resize_value: Larger side at most this (`--max_resize_value`).
    resize_factor: Resized sides are multiples of it plus one (`--resize_factor`).
    with_label: False for splits without ground truth (visualisation only).
  """
  dataset: str
  dataset_dir: str
  split: str = 'val'
  batch_size: int = 1
  eval_scales: Sequence[float] = (1.0,)
  add_flipped_images: bool = False
  min_resize_value: Optional[int] = None
  max_resize_value: Optional[int] = None
  resize_factor: Optional[int] = None
  with_label: bool = True

  def __post_init__(self):
    object.__setattr__(self, 'eval_scales', tuple(float(s) for s in self.eval_scales))
    if not self.eval_scales or any(not s > 0 for s in self.eval_scales):
      raise ValueError(f'--eval_scales must be positive numbers, got {list(self.eval_scales)}')
    if self.batch_size < 1:
      raise ValueError(f'--eval_batch_size must be at least 1, got {self.batch_size}')
    # Names --dataset if unknown (or --dataset_dir without a dataset_info.json).
    descriptors.get_dataset_descriptor(self.dataset, self.dataset_dir)
    if not self.dataset_dir:
      raise ValueError('--dataset_dir is required')

  @property
  def descriptor(self) -> descriptors.DatasetDescriptor:
    return descriptors.get_dataset_descriptor(self.dataset, self.dataset_dir)

  def check_num_classes(self, num_classes: int) -> None:
    """Raises ValueError naming --dataset unless the model predicts its classes."""
    descriptor = self.descriptor
    if num_classes != descriptor.num_classes:
      raise ValueError(f'The model has {num_classes} classes but {descriptor.flag} '
                       f'has {descriptor.num_classes}')


def summary_tag_prefix(eval_scales: Sequence[float], add_flipped_images: bool) -> str:
  """'miou_1.0', 'miou_0.75_1.0_1.25_flipped'...: the original's `predictions_tag`.

  The original appends `str(scale)` of each float scale, so 1.0 is written '1.0'.
  """
  tag = 'miou' + ''.join('_' + str(float(s)) for s in eval_scales)
  return tag + ('_flipped' if add_flipped_images else '')


def summary_tags(eval_scales: Sequence[float], add_flipped_images: bool,
                 num_classes: int) -> tuple[str, list[str]]:
  """(overall tag, per-class tags) as the original eval.py writes them."""
  prefix = summary_tag_prefix(eval_scales, add_flipped_images)
  return f'eval/{prefix}_overall', [f'eval/{prefix}_class_{c}' for c in range(num_classes)]


def prediction_function(model, eval_scales: Sequence[float] = (1.0,),
                        add_flipped_images: bool = False) -> Callable:
  """A tf.function: float32 images [B, crop_h, crop_w, 3] -> int32 predictions [B, H, W].

  Traced once for any batch size (the last batch of a split may be smaller).
  """
  height, width = model.options.crop_size
  scales = tuple(float(s) for s in eval_scales)

  @tf.function(input_signature=[tf.TensorSpec([None, height, width, 3], tf.float32)])
  def predict(images):
    return model_lib.predict(model, images, scales, add_flipped_images)['semantic_predictions']
  return predict


def _count_tfrecords(path: str) -> int:
  """Records in an uncompressed TFRecord file, by skipping from header to header."""
  count = 0
  size = fileio.getsize(path)
  with fileio.open_file(path, 'rb') as f:
    while f.tell() < size:
      header = f.read(8)
      if len(header) < 8:
        break
      (length,) = struct.unpack('<Q', header)
      f.seek(4 + length + 4, os.SEEK_CUR)  # Length CRC, data, data CRC.
      count += 1
  return count


def count_examples(config: EvalConfig) -> Optional[int]:
  """Examples in the split (for the progress ETA); None if it cannot be told cheaply."""
  if tfds_source.is_tfds_source(config.dataset_dir):
    return config.descriptor.splits_to_sizes.get(config.descriptor.canonical_split(config.split))
  try:
    return sum(_count_tfrecords(f)
               for f in pipeline.list_files(config.dataset_dir, config.split, config.dataset))
  except OSError:
    return None


def split_files(config: EvalConfig):
  """The TFRecord files of the evaluated split (None for a tfds source)."""
  return pipeline.split_files(config.dataset_dir, config.split, config.dataset)


def build_dataset(config: EvalConfig, crop_size: Sequence[int],
                  crop_size_flag: str = 'eval_crop_size'):
  """The evaluation pipeline of `config` padded to `crop_size` (unshuffled, one pass).

  `crop_size_flag` is the flag an image larger than the crop is told to raise.
  """
  return pipeline.build_dataset(
      config.dataset, config.dataset_dir, config.split, crop_size=tuple(crop_size),
      batch_size=config.batch_size, is_training=False,
      min_resize_value=config.min_resize_value, max_resize_value=config.max_resize_value,
      resize_factor=config.resize_factor, with_label=config.with_label,
      crop_size_flag=crop_size_flag)


def iterate_batches(dataset, files=None):
  """Yields numpy batches; a bad record (label values, size...) becomes a ValueError.

  The pipeline's checks fail inside tf.data with a message naming the TFRecord
  file and record index; this turns them into the user error they are. A
  corrupt record (which TensorFlow reports without its file) is looked up in
  `files`.

  Args:
    dataset: The evaluation pipeline.
    files: Its TFRecord files (`pipeline.split_files`), a function returning
      them, or None.
  """
  iterator = iter(dataset)
  while True:
    try:
      batch = next(iterator)
    except StopIteration:
      return
    except (tf.errors.InvalidArgumentError, tf.errors.DataLossError) as e:
      raise pipeline.read_error(e, files) from None
    yield batch


def evaluate_dataset(predict_fn: Callable, dataset, num_classes: int,
                     ignore_label: int = 255,
                     progress: Optional[progress_lib.Progress] = None,
                     files=None) -> tuple:
  """Accumulates the confusion matrix of `predict_fn` over `dataset`.

  Args:
    predict_fn: images float32 [B, H, W, 3] -> int predictions [B, H, W].
    dataset: Batches of the evaluation pipeline (`image`, `label`, `image_name`).
    num_classes: Number of classes.
    ignore_label: Label value not counted (padding included).
    progress: Optional progress reporter.
    files: The dataset's TFRecord files (or a function returning them), to
      name a corrupt one.

  Returns:
    (metrics.StreamingConfusion, number of images).

  Raises:
    ValueError: a label outside [0, num_classes) that is not the ignore label,
      naming the TFRecord file and record (or the image).
  """
  confusion = metrics.StreamingConfusion(num_classes, ignore_label)
  num_images = 0
  for batch in iterate_batches(dataset, files):
    predictions = np.asarray(predict_fn(batch['image']))
    labels = batch['label'].numpy()[..., 0]
    names = batch['image_name'].numpy()
    for i in range(labels.shape[0]):
      # Per image, so that an error names the image at fault.
      confusion.update(labels[i], predictions[i], source=f'image {names[i].decode()}')
    num_images += labels.shape[0]
    if progress is not None:
      progress.update(labels.shape[0])
  if progress is not None:
    progress.finish()
  return confusion, num_images


def format_table(result: dict) -> str:
  """The per-class IoU table with class names, then mIOU and pixel accuracy."""
  names = result['class_names']
  width = max([len(n) for n in names] + [len('pixel accuracy')])
  lines = [f'{"class":<{width}}  {"IoU":>7}']
  for name, iou in zip(names, result['per_class_iou']):
    if iou is None:
      lines.append(f'{name:<{width}}  {"-":>7}  (absent from labels and predictions)')
    else:
      lines.append(f'{name:<{width}}  {iou:7.4f}')
  lines.append('-' * (width + 9))
  lines.append(f'{"mIOU":<{width}}  {result["miou"]:7.4f}')
  lines.append(f'{"pixel accuracy":<{width}}  {result["pixel_accuracy"]:7.4f}')
  return '\n'.join(lines)


def _json_value(value):
  if isinstance(value, float) and math.isnan(value):
    return None
  return value


class Evaluator:
  """Builds the model once at the eval crop size and evaluates checkpoints with it.

  Args:
    model_options: `ModelOptions` with `crop_size` = the eval crop size.
    config: `EvalConfig`.
    eval_logdir: Where metrics files and TensorBoard events go; None = nowhere.
    show_progress: Report progress (images/s, ETA) while evaluating.
    model: An already built model for `model_options` (else one is built).
  """

  def __init__(self, model_options, config: EvalConfig, eval_logdir: Optional[str] = None,
               show_progress: bool = True, model=None):
    config.check_num_classes(model_options.num_classes)
    self.options = model_options
    self.config = config
    self.eval_logdir = eval_logdir
    self.show_progress = show_progress
    self.model = model if model is not None else model_lib.build_model(model_options)
    self.predict_fn = prediction_function(self.model, config.eval_scales,
                                          config.add_flipped_images)
    self._writer = None

  def evaluate(self, checkpoint: Optional[str] = None, global_step: int = 0) -> dict:
    """Evaluates the model's current weights over the split; writes the results.

    Args:
      checkpoint: Name of the weights' checkpoint, recorded in the results.
      global_step: Training step, for the summaries and `metrics-<step>.json`.

    Returns:
      The results dict written to `metrics.json` (see `docs/evaluation.md`).
    """
    config = self.config
    descriptor = config.descriptor
    what = f'eval {os.path.basename(checkpoint)}' if checkpoint else 'eval'
    progress = progress_lib.Progress(count_examples(config), what, enabled=self.show_progress)
    dataset = build_dataset(config, self.options.crop_size)
    confusion, num_images = evaluate_dataset(self.predict_fn, dataset, descriptor.num_classes,
                                             descriptor.ignore_label, progress,
                                             files=lambda: split_files(config))
    if num_images == 0:
      raise ValueError(f'--eval_split={config.split}: no images in {config.dataset_dir}')
    scores = confusion.result()
    overall_tag, _ = summary_tags(config.eval_scales, config.add_flipped_images,
                                  descriptor.num_classes)
    result = {
        'miou': scores['miou'],
        'per_class_iou': scores['per_class_iou'],
        'class_names': list(descriptor.class_names),
        'pixel_accuracy': scores['pixel_accuracy'],
        'checkpoint': checkpoint,
        'global_step': int(global_step),
        'dataset': config.dataset,
        'split': descriptor.canonical_split(config.split),
        'num_images': num_images,
        'eval_scales': list(config.eval_scales),
        'add_flipped_images': config.add_flipped_images,
        'eval_crop_size': list(self.options.crop_size),
        'summary_tag': overall_tag,
        'seconds': progress.elapsed,
        'images_per_second': progress.rate(),
        'confusion_matrix': confusion.matrix.tolist(),
    }
    self.write(result, confusion.matrix)
    return result

  def evaluate_checkpoint(self, checkpoint_path: str, flag: str = 'checkpoint_path') -> dict:
    """Loads a checkpoint (ours or an original TF1 one) strictly and evaluates it.

    Args:
      checkpoint_path: Prefix, one of its files, or a directory (its latest).
      flag: Flag to name in errors.

    Raises:
      FileNotFoundError / ValueError naming `flag` for a missing or mismatched
      checkpoint; ValueError for bad records (see `evaluate_dataset`).
    """
    path = watch.resolve_checkpoint(checkpoint_path, flag)
    checkpoints.load_checkpoint(self.model, path, mode=checkpoints.STRICT, flag=flag)
    step = watch.global_step_of(path)
    logging.info('Evaluating %s (global step %d) on %s/%s', path, step, self.config.dataset,
                 self.config.split)
    return self.evaluate(path, step)

  def write(self, result: dict, confusion) -> None:
    """Prints the table; writes metrics JSON files and summaries into `eval_logdir`."""
    print(f'{result["checkpoint"] or "model"} (global step {result["global_step"]}), '
          f'{result["dataset"]}/{result["split"]}: {result["num_images"]} images, '
          f'eval_scales {result["eval_scales"]}'
          f'{" + flipped" if result["add_flipped_images"] else ""}, '
          f'{result["images_per_second"]:.2f} images/s')
    print(format_table(result), flush=True)
    if not self.eval_logdir:
      return
    text = json.dumps({k: _json_value(v) for k, v in result.items()}, indent=2) + '\n'
    fileio.atomic_write(os.path.join(self.eval_logdir, STEP_METRICS_FILE % result['global_step']),
                        text)
    fileio.atomic_write(os.path.join(self.eval_logdir, METRICS_FILE), text)
    self._write_summaries(result, confusion)

  def _write_summaries(self, result: dict, confusion) -> None:
    if self._writer is None:
      self._writer = tf.summary.create_file_writer(self.eval_logdir)
    overall_tag, class_tags = summary_tags(result['eval_scales'], result['add_flipped_images'],
                                           len(result['class_names']))
    # Per class as the original: NaN for a class absent from the ground truth.
    per_class = metrics.original_per_class_iou(confusion)
    with self._writer.as_default():
      tf.summary.scalar(overall_tag, result['miou'], step=result['global_step'])
      for tag, value in zip(class_tags, per_class):
        tf.summary.scalar(tag, float(value), step=result['global_step'])
    self._writer.flush()

  def close(self) -> None:
    if self._writer is not None:
      self._writer.close()
      self._writer = None


def older_checkpoints(checkpoint_dir: str, path: str) -> list[str]:
  """The checkpoints of `checkpoint_dir` older than `path`, newest first."""
  state = tf.train.get_checkpoint_state(checkpoint_dir)
  if state is None:
    return []
  paths = [p if os.path.isabs(p) else os.path.join(checkpoint_dir, p)
           for p in state.all_model_checkpoint_paths]
  if path not in paths:
    return []
  return [p for p in reversed(paths[:paths.index(path)]) if fileio.exists(p + '.index')]


def run_evaluation_loop(evaluator: Evaluator, checkpoint_dir: str, eval_interval_secs: float = 300,
                        max_number_of_evaluations: int = 0, checkpoint_timeout_secs: float = 0,
                        poll_secs: float = 1.0) -> list[dict]:
  """Evaluates the latest checkpoint of `checkpoint_dir`, then each new one.

  See `watch.run_on_checkpoints` for when it waits and when it stops. An
  unreadable checkpoint (flipped bytes, a missing shard) is reported with a
  warning naming it, and the newest readable one before it is evaluated.

  Returns:
    The results of every evaluation, in order.
  """
  def evaluate_newest_readable(path, flag):
    try:
      return evaluator.evaluate_checkpoint(path, flag=flag)
    except checkpoints.UnreadableCheckpointError as error:
      for older in older_checkpoints(checkpoint_dir, path):
        logging.warning('%s; evaluating the one before it, %s', error, older)
        try:
          return evaluator.evaluate_checkpoint(older, flag=flag)
        except checkpoints.UnreadableCheckpointError as e:
          error = e
      raise error from None

  try:
    return watch.run_on_checkpoints(
        evaluate_newest_readable, checkpoint_dir, interval_secs=eval_interval_secs,
        max_count=max_number_of_evaluations, timeout_secs=checkpoint_timeout_secs,
        poll_secs=poll_secs)
  finally:
    evaluator.close()
