"""tf.data input pipelines for training and evaluation.

Reads the original release's sharded TFRecords (or a `tfds:` source, see
`tfds_source`), decodes, preprocesses as the original `input_preprocess`
and batches per replica. Works under `tf.distribute` through
`strategy.distribute_datasets_from_function(lambda ctx: build_dataset(...,
input_context=ctx))`: each input pipeline reads its own subset of the files.
With a `seed`, the whole pipeline (file order, shuffling, augmentation) is
reproducible: augmentation uses stateless random ops seeded per element.
"""

import os

import tensorflow as tf

from deeplab_dpc import constants
from deeplab_dpc.data import descriptors
from deeplab_dpc.data import preprocess
from deeplab_dpc.data import tfds_source
from deeplab_dpc.data import tfrecord

# Keeps per-pipeline seeds apart when one `seed` is shared by all workers.
_PIPELINE_SEED_STRIDE = 7919


def _crop_size(crop_size):
  if isinstance(crop_size, int):
    return crop_size, crop_size
  crop_size = tuple(int(c) for c in crop_size)
  if len(crop_size) != 2:
    raise ValueError(f'crop_size must be an int or (height, width), got {crop_size}.')
  return crop_size


def list_files(dataset_dir, split, dataset_name=None):
  """Returns the sorted TFRecord shards of a split: `<split>-NNNNN-of-NNNNN.tfrecord`.

  The canonical split name is tried first, then its aliases (so records
  written under Cityscapes' old 'train' name are found too). Only files named
  as shards count, and they must form one complete set.

  Args:
    dataset_dir: Folder of the shards.
    split: Split name.
    dataset_name: Optional dataset name, to resolve split aliases.

  Returns:
    Sorted list of paths.

  Raises:
    FileNotFoundError: If no file matches; the message names the pattern.
    ValueError: Two shard sets or an incomplete one (`tfrecord.find_shards`).
  """
  names = [split]
  if dataset_name is not None:
    descriptor = descriptors.get_dataset_descriptor(dataset_name, dataset_dir)
    canonical = descriptor.canonical_split(split)
    names = [canonical] + [alias for alias, target in descriptor.split_aliases.items()
                           if target == canonical]
  patterns = []
  for name in names:
    patterns.append(os.path.join(dataset_dir, tfrecord.FILE_PATTERN % name))
    files = tfrecord.find_shards(dataset_dir, name)
    if files:
      return files
  raise FileNotFoundError(f'No TFRecord files match {" or ".join(patterns)}; build the split '
                          'with the datasets/build_*_data.py scripts first.')


def read_error(error, files):
  """The user error a failed read of the pipeline stands for, naming the file.

  Args:
    error: A `tf.errors.InvalidArgumentError` (a bad record: the pipeline's
      checks name its file and index, the image decoder does not) or
      `tf.errors.DataLossError` (a corrupt record: TensorFlow names no file).
      When the message names no record, `files` are searched for it.
    files: The TFRecord files read, a function returning them (called only
      when a search is needed), or None (a tfds source).

  Returns:
    A ValueError to raise.
  """
  message = tfrecord.error_message(error)
  if isinstance(error, tf.errors.InvalidArgumentError) and ' record ' in message:
    return ValueError(message)
  if callable(files):
    files = files()
  if isinstance(error, tf.errors.DataLossError):
    found = tfrecord.find_damaged_record(files or [])
  else:
    found = tfrecord.find_undecodable_record(files or [])
  if found is not None:
    return found
  where = f' in one of {len(files)} files' if files else ''
  return ValueError(f'unreadable input record{where}: {message}')


def split_files(dataset_dir, split, dataset_name=None):
  """`list_files`, or None for a tfds source (which has no files of ours)."""
  if tfds_source.is_tfds_source(dataset_dir):
    return None
  return list_files(dataset_dir, split, dataset_name)


def _read_records(files, num_readers, shuffle, seed, deterministic):
  """Interleaves the records of `files` as (serialized, record name) pairs."""
  file_dataset = tf.data.Dataset.from_tensor_slices(files)
  if shuffle:
    file_dataset = file_dataset.shuffle(len(files), seed=seed, reshuffle_each_iteration=True)

  def records_of(path):
    def named(index, serialized):
      name = tf.strings.join([path, ' record ', tf.strings.as_string(index)])
      return serialized, name
    return tf.data.TFRecordDataset(path).enumerate().map(named)

  return file_dataset.interleave(records_of, cycle_length=max(1, min(num_readers, len(files))),
                                 num_parallel_calls=tf.data.AUTOTUNE, deterministic=deterministic)


def build_dataset(dataset_name, dataset_dir, split, *, crop_size, batch_size, is_training,
                  min_resize_value=None, max_resize_value=None, resize_factor=None,
                  min_scale_factor=0.5, max_scale_factor=2.0, scale_factor_step_size=0.25,
                  seed=None, input_context=None, num_readers=4, repeat=None, shuffle=None,
                  shuffle_buffer_size=100, drop_remainder=None, with_label=True,
                  tfds_data_dir=None, mean_pixel=constants.MEAN_PIXEL,
                  crop_size_flag='eval_crop_size'):
  """Builds the input pipeline of one split.

  Args:
    dataset_name: 'cityscapes', 'pascal_voc_seg', 'pascal_person_part',
      'demo' or 'custom' (the `--dataset` flag; 'custom' reads
      `dataset_dir/dataset_info.json`).
    dataset_dir: Folder of the TFRecord shards, or 'tfds:<name>' for a
      tensorflow-datasets source (e.g. 'tfds:cityscapes/semantic_segmentation').
    split: Split name (aliases accepted).
    crop_size: int or (height, width): training crop, or the size
      evaluation images are padded to.
    batch_size: Global batch size; with `input_context` each replica gets
      its share (`input_context.get_per_replica_batch_size`).
    is_training: Training applies random scale, crop and flip; evaluation
      only resizes (if asked) and pads.
    min_resize_value: Smaller side resized to this (keeping aspect), or None.
    max_resize_value: Larger side at most this, or None.
    resize_factor: Resized sides are multiples of it plus one, or None.
    min_scale_factor: Minimum random scale (training).
    max_scale_factor: Maximum random scale (training).
    scale_factor_step_size: Step between random scales (0 = continuous).
    seed: Makes file order, shuffling and augmentation reproducible; None
      gives fresh randomness on every run.
    input_context: Optional `tf.distribute.InputContext`: shards the files
      across input pipelines and sets the per-replica batch size.
    num_readers: Files read in parallel.
    repeat: None = forever when training, once otherwise; True/False; or a
      number of epochs.
    shuffle: Shuffle files and records; None = when training.
    shuffle_buffer_size: Records in the shuffle buffer (the original: 100).
    drop_remainder: Drop the last partial batch; None = when training.
    with_label: False for splits without ground truth (no 'label' key then;
      evaluation only).
    tfds_data_dir: tfds data folder for 'tfds:' sources.
    mean_pixel: Image padding value.
    crop_size_flag: The flag of `crop_size`, named when an evaluation image
      is larger than it.

  Returns:
    tf.data.Dataset of dicts: 'image' float32 [B, H, W, 3] in [0, 255],
    'label' int32 [B, H, W, 1], 'image_name' string [B], 'height' and
    'width' int32 [B] (size before preprocessing).

  Raises:
    ValueError: Unknown dataset or split, bad arguments, too few files
      for the number of input pipelines, or a truncated shard (named).
    FileNotFoundError: If the split has no files.
  """
  descriptor = descriptors.get_dataset_descriptor(dataset_name, dataset_dir)
  split = descriptor.canonical_split(split)
  crop_height, crop_width = _crop_size(crop_size)
  if is_training and not with_label:
    raise ValueError('Training needs labels: with_label must be True when is_training.')
  if batch_size < 1:
    raise ValueError(f'batch_size must be positive, got {batch_size}.')
  shuffle = is_training if shuffle is None else shuffle
  drop_remainder = is_training if drop_remainder is None else drop_remainder
  repeat = is_training if repeat is None else repeat
  deterministic = True if seed is not None else None

  per_replica_batch = batch_size
  num_pipelines, pipeline_id = 1, 0
  if input_context is not None:
    per_replica_batch = input_context.get_per_replica_batch_size(batch_size)
    num_pipelines = input_context.num_input_pipelines
    pipeline_id = input_context.input_pipeline_id
  if seed is not None:
    seed = int(seed) + _PIPELINE_SEED_STRIDE * pipeline_id

  if tfds_source.is_tfds_source(dataset_dir):
    samples = tfds_source.load(dataset_dir[len(tfds_source.TFDS_PREFIX):], split,
                               dataset_name, data_dir=tfds_data_dir, shuffle_files=shuffle,
                               seed=seed, input_context=input_context)
    samples = samples.map(lambda s: (s, s['image_name']))
  else:
    files = list_files(dataset_dir, split, dataset_name)
    if len(files) < num_pipelines:
      raise ValueError(f'{len(files)} files match split {split!r} in {dataset_dir} but '
                       f'there are {num_pipelines} input pipelines; rebuild with '
                       '--num_shards >= the number of workers.')
    files = files[pipeline_id::num_pipelines]
    for path in files:
      tfrecord.check_framing(path)  # A truncated shard is named before any work.
    samples = _read_records(files, num_readers, shuffle, seed, deterministic)

  if shuffle:
    samples = samples.shuffle(shuffle_buffer_size, seed=seed, reshuffle_each_iteration=True)
  if repeat is True:
    samples = samples.repeat()
  elif repeat is not False:
    samples = samples.repeat(int(repeat))
  # One stateless seed per element, drawn after `repeat` so every epoch is
  # augmented differently.
  element_seeds = tf.data.Dataset.random(seed=seed).batch(2)
  samples = tf.data.Dataset.zip((samples, element_seeds))

  def process(source, element_seed):
    record, record_name = source
    if isinstance(record, dict):
      sample = dict(record)
      if not with_label:
        sample.pop('label', None)
    else:
      sample = tfrecord.parse_record(record, record_name, with_label)
    label = sample.get('label')
    if label is not None:
      valid = tf.logical_or(label < descriptor.num_classes,
                            tf.equal(label, descriptor.ignore_label))
      check = tfrecord.assert_that(
          tf.reduce_all(valid), 'TFRecord ', record_name, ' has label values outside [0, ',
          str(descriptor.num_classes), ') that are not the ignore label ',
          str(descriptor.ignore_label), ' (max ', tf.reduce_max(label), ')')
      with tf.control_dependencies([check]):
        label = tf.identity(label)
    _, image, label = preprocess.preprocess_image_and_label(
        sample['image'], label, crop_height, crop_width,
        min_resize_value=min_resize_value, max_resize_value=max_resize_value,
        resize_factor=resize_factor, min_scale_factor=min_scale_factor,
        max_scale_factor=max_scale_factor, scale_factor_step_size=scale_factor_step_size,
        ignore_label=descriptor.ignore_label, is_training=is_training,
        mean_pixel=mean_pixel, seed=element_seed, crop_size_flag=crop_size_flag)
    out = {'image': image, 'image_name': sample['image_name'],
           'height': tf.cast(sample['height'], tf.int32),
           'width': tf.cast(sample['width'], tf.int32)}
    if label is not None:
      out['label'] = label
    return out

  dataset = samples.map(process, num_parallel_calls=tf.data.AUTOTUNE,
                        deterministic=deterministic)
  dataset = dataset.batch(per_replica_batch, drop_remainder=drop_remainder)
  dataset = dataset.prefetch(tf.data.AUTOTUNE)
  options = tf.data.Options()
  if seed is not None:
    options.deterministic = True
  if input_context is not None:
    # Files are already sharded by hand above (or by tfds' ReadConfig).
    options.experimental_distribute.auto_shard_policy = (
        tf.data.experimental.AutoShardPolicy.OFF)
  return dataset.with_options(options)
