"""The TFRecord example format of the original release (`datasets/build_data.py`).

Records written here and by the original `build_*_data.py` scripts are
interchangeable: same keys, same encodings (the label is a single-channel PNG
of class ids), same shard names.
"""

import glob
import os
import re
import struct

import tensorflow as tf

from deeplab_dpc import fileio

IMAGE_ENCODED = 'image/encoded'
IMAGE_FILENAME = 'image/filename'
IMAGE_FORMAT = 'image/format'
IMAGE_HEIGHT = 'image/height'
IMAGE_WIDTH = 'image/width'
IMAGE_CHANNELS = 'image/channels'
LABEL_ENCODED = 'image/segmentation/class/encoded'
LABEL_FORMAT = 'image/segmentation/class/format'

REQUIRED_KEYS = (IMAGE_ENCODED, IMAGE_HEIGHT, IMAGE_WIDTH, LABEL_ENCODED)

# The original maps the `--image_format` flag value to the stored format name.
IMAGE_FORMAT_MAP = {'jpg': 'jpeg', 'jpeg': 'jpeg', 'png': 'png'}

SHARD_NAME_FORMAT = '%s-%05d-of-%05d.tfrecord'
# The original reader globs `<split>-*` (`data_generator._FILE_PATTERN`); only
# the shard names themselves are read here, so a `val-notes.txt` beside them is
# not taken for a TFRecord.
FILE_PATTERN = '%s-?????-of-?????.tfrecord'


def _bytes_feature(value):
  if isinstance(value, str):
    value = value.encode('utf-8')
  return tf.train.Feature(bytes_list=tf.train.BytesList(value=[value]))


def _int64_feature(value):
  return tf.train.Feature(int64_list=tf.train.Int64List(value=[int(value)]))


def encode_example(image_bytes, label_bytes, filename, height, width, image_format='png',
                   label_format='png', channels=3):
  """Serializes one image/label pair as a tf.train.Example.

  Args:
    image_bytes: The encoded image (PNG or JPEG bytes), stored unchanged.
    label_bytes: The encoded label map: a single-channel PNG of class ids.
    filename: Image name without folder or extension (the original's
      `image/filename`).
    height: Image height in pixels.
    width: Image width in pixels.
    image_format: 'png', 'jpeg' or 'jpg' (stored as 'jpeg').
    label_format: Label encoding; only 'png' exists in the original.
    channels: Stored `image/channels`; the original always writes 3.

  Returns:
    The serialized `tf.train.Example` (bytes).

  Raises:
    ValueError: If a format is unknown.
  """
  if image_format not in IMAGE_FORMAT_MAP:
    raise ValueError(f'Unknown image format {image_format!r} for {filename}; expected one '
                     f'of {sorted(IMAGE_FORMAT_MAP)}.')
  if label_format != 'png':
    raise ValueError(f'Unknown label format {label_format!r} for {filename}; expected png.')
  example = tf.train.Example(features=tf.train.Features(feature={
      IMAGE_ENCODED: _bytes_feature(image_bytes),
      IMAGE_FILENAME: _bytes_feature(filename),
      IMAGE_FORMAT: _bytes_feature(IMAGE_FORMAT_MAP[image_format]),
      IMAGE_HEIGHT: _int64_feature(height),
      IMAGE_WIDTH: _int64_feature(width),
      IMAGE_CHANNELS: _int64_feature(channels),
      LABEL_ENCODED: _bytes_feature(label_bytes),
      LABEL_FORMAT: _bytes_feature(label_format),
  }))
  # Deterministic: the feature map is written in key order, so every build of
  # the same data gives the same bytes.
  return example.SerializeToString(deterministic=True)


# Defaults mark a missing key so the assertions below can name it; the
# original used the same defaults silently.
_FEATURES = {
    IMAGE_ENCODED: tf.io.FixedLenFeature((), tf.string, default_value=''),
    IMAGE_FILENAME: tf.io.FixedLenFeature((), tf.string, default_value=''),
    IMAGE_FORMAT: tf.io.FixedLenFeature((), tf.string, default_value='jpeg'),
    IMAGE_HEIGHT: tf.io.FixedLenFeature((), tf.int64, default_value=-1),
    IMAGE_WIDTH: tf.io.FixedLenFeature((), tf.int64, default_value=-1),
    LABEL_ENCODED: tf.io.FixedLenFeature((), tf.string, default_value=''),
    LABEL_FORMAT: tf.io.FixedLenFeature((), tf.string, default_value='png'),
}


def assert_that(condition, *parts):
  """A tf.debugging.Assert whose message is one string, joined from `parts`.

  Parts may be python strings or scalar tensors of any dtype, so the
  message can name a record whose name is only known at run time.
  """
  strings = [p if isinstance(p, str) else tf.strings.as_string(p)
             if p.dtype != tf.string else p for p in parts]
  return tf.debugging.Assert(condition, [tf.strings.join(strings)])


def error_message(error):
  """Returns the text of a failed `assert_that` (or any TF error) on one line."""
  message = error.message or ''
  if 'Summarized data:' in message:
    message = message.split('Summarized data:', 1)[1]
  # TensorFlow's wrapping ('{{function_node ...}}', '[Op:IteratorGetNext] name:')
  # says where in the graph, not what is wrong with the data.
  message = re.sub(r'\{\{[^}]*\}\}', ' ', message)
  message = re.sub(r'\[Op:[^\]]*\](\s*name:\s*\S*)?', ' ', message)
  message = re.sub(r'\[\[\s*\]\]', ' ', message)
  message = ' '.join(message.split())
  asserted = re.fullmatch(r'.*?assertion failed: \[(.*)\]', message)
  if asserted:
    message = asserted.group(1)
  if message.startswith("b'") or message.startswith('b"'):
    message = message[2:-1]
  return message


def _is_png(content):
  return tf.equal(tf.strings.substr(content, 0, 8), b'\x89PNG\r\n\x1a\n')


def parse_record(serialized, record_name='', with_label=True):
  """Parses and decodes one serialized example; graph-safe (usable in tf.data).

  Every failure is a `tf.errors.InvalidArgumentError` whose message contains
  `record_name`, so a bad record can be found in its file.

  Args:
    serialized: Scalar string tensor, one serialized `tf.train.Example`.
    record_name: Scalar string (tensor) naming the record in error messages,
      e.g. 'train-00000-of-00004.tfrecord record 12'.
    with_label: Whether to decode the label (False for unlabelled test data).

  Returns:
    Dict with 'image' (uint8 [H, W, 3]), 'label' (uint8 [H, W, 1], only if
    `with_label`), 'image_name' (string), 'height' and 'width' (int32, as
    stored in the record).
  """
  parsed = tf.io.parse_single_example(serialized, _FEATURES)
  checks = [
      assert_that(tf.strings.length(parsed[IMAGE_ENCODED]) > 0,
                  'TFRecord ', record_name, ' has no ', IMAGE_ENCODED),
      assert_that(parsed[IMAGE_HEIGHT] >= 0, 'TFRecord ', record_name, ' has no ', IMAGE_HEIGHT),
      assert_that(parsed[IMAGE_WIDTH] >= 0, 'TFRecord ', record_name, ' has no ', IMAGE_WIDTH),
      # Checking the magic bytes first turns corrupt image data into an error
      # that names the record instead of an anonymous decoder failure.
      assert_that(
          tf.logical_or(tf.io.is_jpeg(parsed[IMAGE_ENCODED]), _is_png(parsed[IMAGE_ENCODED])),
          'TFRecord ', record_name, ' has corrupt ', IMAGE_ENCODED, ' (neither PNG nor JPEG)'),
  ]
  if with_label:
    checks += [
        assert_that(tf.strings.length(parsed[LABEL_ENCODED]) > 0,
                    'TFRecord ', record_name, ' has no ', LABEL_ENCODED),
        assert_that(_is_png(parsed[LABEL_ENCODED]),
                    'TFRecord ', record_name, ' has corrupt ', LABEL_ENCODED, ' (not a PNG)'),
    ]
  with tf.control_dependencies(checks):
    image = tf.io.decode_image(parsed[IMAGE_ENCODED], channels=3, expand_animations=False)
  image.set_shape([None, None, 3])
  height = tf.cast(parsed[IMAGE_HEIGHT], tf.int32)
  width = tf.cast(parsed[IMAGE_WIDTH], tf.int32)
  image_shape = tf.shape(image)
  shape_check = assert_that(
      tf.logical_and(tf.equal(image_shape[0], height), tf.equal(image_shape[1], width)),
      'TFRecord ', record_name, ' stores height x width ', height, 'x', width,
      ' but its image is ', image_shape[0], 'x', image_shape[1])
  with tf.control_dependencies([shape_check]):
    sample = {
        'image': tf.identity(image),
        'image_name': parsed[IMAGE_FILENAME],
        'height': height,
        'width': width,
    }
  if with_label:
    # Labels are always PNG; decode_png with one channel keeps class ids
    # of grayscale PNGs unchanged.
    with tf.control_dependencies(checks):
      label = tf.io.decode_png(parsed[LABEL_ENCODED], channels=1)
    label_shape = tf.shape(label)
    label_check = assert_that(
        tf.reduce_all(tf.equal(label_shape[:2], image_shape[:2])),
        'TFRecord ', record_name, ' has a label of size ', label_shape[0], 'x',
        label_shape[1], ' but an image of size ', image_shape[0], 'x', image_shape[1])
    with tf.control_dependencies([label_check]):
      label = tf.identity(label)
    label.set_shape([None, None, 1])
    sample['label'] = label
  return sample


def decode_example(serialized, record_name='record', with_label=True):
  """Decodes one serialized example eagerly into numpy values.

  Args:
    serialized: Bytes of one serialized `tf.train.Example`.
    record_name: Name used in error messages.
    with_label: Whether to decode the label.

  Returns:
    Dict with 'image' (uint8 [H, W, 3]), 'label' (uint8 [H, W, 1]),
    'image_name' (str), 'height' and 'width' (int).

  Raises:
    ValueError: If the record is not a valid example of this format; the
      message names `record_name`.
  """
  try:
    sample = parse_record(tf.constant(serialized), record_name, with_label)
  except (tf.errors.InvalidArgumentError, tf.errors.DataLossError) as e:
    raise ValueError(f'{record_name}: not a valid DeepLab example: '
                     f'{error_message(e)}') from None
  out = {key: value.numpy() for key, value in sample.items()}
  out['image_name'] = out['image_name'].decode('utf-8')
  out['height'] = int(out['height'])
  out['width'] = int(out['width'])
  return out


def read_examples(path, with_label=True):
  """Yields the decoded examples of one TFRecord file, in order.

  Args:
    path: TFRecord file.
    with_label: Whether to decode labels.

  Yields:
    Dicts as returned by `decode_example`.

  Raises:
    FileNotFoundError: If `path` does not exist.
    ValueError: If a record is invalid; the message names the file and the
      record index.
  """
  if not fileio.exists(path):
    raise FileNotFoundError(f'TFRecord file {path} does not exist.')
  index = 0
  try:
    for serialized in tf.data.TFRecordDataset(path):
      yield decode_example(serialized.numpy(), f'{path} record {index}', with_label)
      index += 1
  except tf.errors.DataLossError as e:
    raise ValueError(f'{path} record {index}: truncated or corrupt TFRecord file '
                     f'({error_message(e)})') from None


def shard_name(split, shard_id, num_shards):
  """Returns the original release's shard file name, e.g. 'train-00000-of-00004.tfrecord'."""
  return SHARD_NAME_FORMAT % (split, shard_id, num_shards)



def _shard_regex(split):
  return re.compile(re.escape(split) + r'-(\d{5})-of-(\d{5})\.tfrecord$')


def shard_paths(directory, split):
  """Every file of `directory` named as a shard of `split`, sorted, whatever its set."""
  regex = _shard_regex(split)
  return [path for path in fileio.glob_in(directory, FILE_PATTERN % glob.escape(split))
          if regex.match(os.path.basename(path))]


def find_shards(directory, split):
  """The shards of `split` in `directory` if they form one complete set.

  A complete set is `<split>-00000-of-0000N` ... `<split>-0000(N-1)-of-0000N`,
  all with the same N. Two sets (an interrupted rebuild with another shard
  count) or a missing shard would make readers see some records twice or not
  at all, so both are errors.

  Args:
    directory: Folder of the shards.
    split: Split name as written in the file names.

  Returns:
    The sorted paths, or [] when no file is named as a shard of `split`.

  Raises:
    ValueError: Naming the folder, the split and what is wrong.
  """
  paths = shard_paths(directory, split)
  if not paths:
    return []
  regex = _shard_regex(split)
  sets = {}
  for path in paths:
    index, total = (int(g) for g in regex.match(os.path.basename(path)).groups())
    sets.setdefault(total, set()).add(index)
  if len(sets) > 1:
    counts = ' and '.join(f'{n} ({len(sets[n])} files)' for n in sorted(sets))
    raise ValueError(f'{directory} holds {len(sets)} shard sets of split {split!r}, of '
                     f'{counts} shards (left by an interrupted build): rebuild the split, '
                     'or remove one set')
  (total, indices), = sets.items()
  missing = sorted(set(range(total)) - indices)
  if missing or indices - set(range(total)):
    shown = ', '.join(shard_name(split, i, total) for i in missing[:3])
    more = f' and {len(missing) - 3} more' if len(missing) > 3 else ''
    problem = (f'lacks {shown}{more}' if missing
               else 'has shard numbers beyond the count in their names')
    raise ValueError(f'{directory}: split {split!r} is incomplete: its set of {total} shards '
                     f'{problem}; rebuild the split')
  return paths


# A TFRecord record: uint64 length, uint32 masked CRC of the length, the data,
# uint32 masked CRC of the data.
_RECORD_OVERHEAD = 8 + 4 + 4


def check_framing(path):
  """Raises naming the file when a TFRecord file is truncated.

  Walks the record headers only (one seek per record), so a shard cut short
  by a full disk or an interrupted copy is named before any training or
  evaluation starts. Corrupted bytes inside a record are found when the
  record is read (`find_damaged_record`).

  Args:
    path: An uncompressed TFRecord file.

  Returns:
    The number of records.

  Raises:
    ValueError: `<path>: truncated TFRecord file ...`.
  """
  count = 0
  size = fileio.getsize(path)
  with fileio.open_file(path, 'rb') as f:
    offset = 0
    while offset < size:
      header = f.read(8)
      if len(header) < 8:
        raise ValueError(f'{path}: truncated TFRecord file: {size - offset} stray bytes '
                         f'after record {count - 1} (rebuild or copy the shard again)')
      (length,) = struct.unpack('<Q', header)
      end = offset + _RECORD_OVERHEAD + length
      if end > size:
        raise ValueError(f'{path}: truncated TFRecord file: record {count} at byte {offset} '
                         f'needs {end - offset} bytes, the file ends at byte {size} (rebuild '
                         'or copy the shard again)')
      f.seek(end)
      offset = end
      count += 1
  return count


def find_damaged_record(paths):
  """The error naming the first unreadable record of `paths`, or None if all read.

  Reads every record (checking their CRCs): meant for when reading already
  failed with a `tf.errors.DataLossError`, whose message names no file.

  Args:
    paths: TFRecord files.

  Returns:
    A ValueError naming the file and the record, or None.
  """
  for path in paths:
    index = 0
    try:
      for _ in tf.data.TFRecordDataset(path):
        index += 1
    except tf.errors.DataLossError as e:
      return ValueError(f'{path} record {index}: truncated or corrupt TFRecord file '
                        f'({error_message(e)})')
  return None


def find_undecodable_record(paths):
  """The error naming the first record of `paths` that does not decode, or None.

  Decodes every record (image and label): meant for when the pipeline's
  decoder already failed with a message that names no record.

  Args:
    paths: TFRecord files.

  Returns:
    A ValueError naming the file and the record, or None.
  """
  for path in paths:
    try:
      for _ in read_examples(path):
        pass
    except ValueError as e:
      return e
  return None
