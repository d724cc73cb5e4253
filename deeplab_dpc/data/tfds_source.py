"""tensorflow-datasets sources mapped onto this project's examples.

A source is named `tfds:<name>` (e.g. `tfds:cityscapes/semantic_segmentation`,
built from a manual download of the official zips, or `tfds:deeplab_dpc_demo`).
An adapter says which tfds features hold the image, the label and the name,
how our split names map to tfds splits, and how raw label values map to our
class ids: tfds Cityscapes yields labelIds 0-33, mapped to the 19 train ids
with cityscapesscripts' table. tfds' `voc/2012` has boxes only, no masks, so
it has no adapter.
"""

import dataclasses
from typing import Callable, Mapping, Optional

import tensorflow as tf

TFDS_PREFIX = 'tfds:'


@dataclasses.dataclass(frozen=True)
class TfdsAdapter:
  """How a tfds dataset's features map onto ours.

  Attributes:
    dataset: Our dataset name (descriptor) the source provides.
    image_key: Feature holding the uint8 [H, W, 3] image.
    label_key: Feature holding the [H, W, 1] label map.
    name_key: Feature holding the image name, or None.
    split_map: Our split name -> tfds split expression.
    label_table: Optional function returning a uint8 [256] lookup table
      applied to the raw label values.
  """
  dataset: str
  image_key: str
  label_key: str
  name_key: Optional[str]
  split_map: Mapping[str, str]
  label_table: Optional[Callable[[], object]] = None


def _cityscapes_table():
  from deeplab_dpc.data import cityscapes  # pylint: disable=g-import-not-at-top
  return cityscapes.label_id_to_train_id()


CITYSCAPES_ADAPTER = TfdsAdapter(
    dataset='cityscapes', image_key='image_left', label_key='segmentation_label',
    name_key='image_id',
    split_map={'train_fine': 'train', 'val_fine': 'validation', 'test_fine': 'test',
               'trainval_fine': 'train+validation'},
    label_table=_cityscapes_table)

CITYSCAPES_COARSE_ADAPTER = TfdsAdapter(
    dataset='cityscapes', image_key='image_left', label_key='segmentation_label',
    name_key='image_id',
    split_map={'train_coarse': 'train+train_extra',
               'trainval_coarse': 'train+validation+train_extra'},
    label_table=_cityscapes_table)

DEMO_ADAPTER = TfdsAdapter(
    dataset='demo', image_key='image', label_key='segmentation_label', name_key='image_id',
    split_map={'train': 'train', 'val': 'val'})

_ADAPTERS = {
    'cityscapes/semantic_segmentation': CITYSCAPES_ADAPTER,
    'cityscapes/semantic_segmentation_extra': CITYSCAPES_COARSE_ADAPTER,
    'deeplab_dpc_demo': DEMO_ADAPTER,
}


def register_tfds_adapter(tfds_name, adapter):
  """Makes `tfds:<tfds_name>` usable as a source (e.g. another tfds config)."""
  _ADAPTERS[tfds_name] = adapter


def is_tfds_source(dataset_dir):
  """Whether `dataset_dir` names a tfds source ('tfds:<name>')."""
  return isinstance(dataset_dir, str) and dataset_dir.startswith(TFDS_PREFIX)


def get_adapter(tfds_name):
  """Returns the adapter of a tfds dataset name ('name' or 'name/config[:version]').

  Raises:
    ValueError: If no adapter is known for it.
  """
  base = tfds_name.split(':')[0]
  for key in (base, base.split('/')[0]):
    if key in _ADAPTERS:
      return _ADAPTERS[key]
  raise ValueError(f'No mapping for tfds dataset {tfds_name!r}; known: {sorted(_ADAPTERS)}. '
                   '(tfds voc/2012 has no segmentation masks; build TFRecords from VOCdevkit.)')


def load(tfds_name, split, dataset_name, data_dir=None, shuffle_files=False, seed=None,
         input_context=None):
  """Loads a tfds split as a dataset of our decoded examples.

  Args:
    tfds_name: tfds dataset name, e.g. 'cityscapes/semantic_segmentation'.
    split: Our (canonical) split name.
    dataset_name: Our dataset name; must match the adapter's.
    data_dir: tfds data folder (None = tfds default).
    shuffle_files: Whether tfds shuffles its files.
    seed: Shuffle seed for the files.
    input_context: Optional tf.distribute.InputContext; tfds shards the
      files across input pipelines with it.

  Returns:
    tf.data.Dataset of dicts: 'image' uint8 [H, W, 3], 'label' uint8
    [H, W, 1] (our class ids), 'image_name' string, 'height', 'width' int32.

  Raises:
    ValueError: If the dataset or split has no mapping.
  """
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  adapter = get_adapter(tfds_name)
  if adapter.dataset != dataset_name:
    raise ValueError(f'tfds source {tfds_name!r} provides --dataset={adapter.dataset}, not '
                     f'{dataset_name!r}.')
  if split not in adapter.split_map:
    raise ValueError(f'Split {split!r} has no tfds equivalent for {tfds_name!r}; expected one '
                     f'of {sorted(adapter.split_map)}.')
  read_config = tfds.ReadConfig(shuffle_seed=seed, input_context=input_context,
                                interleave_cycle_length=4)
  dataset = tfds.load(tfds_name, split=adapter.split_map[split], data_dir=data_dir,
                      shuffle_files=shuffle_files, read_config=read_config, download=False)
  table = None
  if adapter.label_table is not None:
    table = tf.constant(adapter.label_table(), dtype=tf.uint8)

  def to_sample(features):
    image = tf.ensure_shape(features[adapter.image_key], [None, None, 3])
    label = tf.cast(features[adapter.label_key], tf.uint8)
    if label.shape.rank == 2:
      label = label[..., None]
    if table is not None:
      label = tf.gather(table, tf.cast(label, tf.int32))
    shape = tf.shape(image)
    name = features[adapter.name_key] if adapter.name_key else tf.constant('')
    return {'image': image, 'label': label, 'image_name': name,
            'height': shape[0], 'width': shape[1]}

  return dataset.map(to_sample, num_parallel_calls=tf.data.AUTOTUNE)
