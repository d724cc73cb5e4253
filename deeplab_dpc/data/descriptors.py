"""Dataset descriptors: splits and their sizes, classes, ignore label, colormap.

The one place that knows what each dataset looks like. Numbers for Cityscapes
and PASCAL VOC 2012 are those of the original `datasets/data_generator.py`.
A folder built from the user's own data (`datasets/build_custom_data.py`) is
described by its `dataset_info.json`: `get_dataset_descriptor('custom',
dataset_dir)` (or no name at all) reads it, so no code names such a dataset.
"""

import dataclasses
from typing import Mapping, Optional, Tuple

from deeplab_dpc import constants
from deeplab_dpc.data import dataset_info
from deeplab_dpc.data.colormaps import colorize  # pylint: disable=unused-import
from deeplab_dpc.data.colormaps import colormap  # pylint: disable=unused-import
from deeplab_dpc.data.colormaps import with_colors


@dataclasses.dataclass(frozen=True)
class DatasetDescriptor:
  """What the input pipeline and the builders need to know about a dataset.

  Attributes:
    name: The name used by `--dataset` flags.
    splits_to_sizes: Number of examples of every split.
    num_classes: Number of semantic classes, background included.
    ignore_label: Label value ignored by the loss and the metrics.
    class_names: One name per class, index = class id.
    colormap_name: Name accepted by `colormap()`.
    split_aliases: Old split names accepted in place of the current ones.
    colors: The dataset's own [r, g, b] colour of each class (a custom dataset's
      `dataset_info.json` colormap), or None for the `colormap_name` colours.
    info_file: The `dataset_info.json` a custom descriptor was read from.
    class_pixel_counts: {split: pixels of each class} from `dataset_info.json`,
      or None when unknown.
  """
  name: str
  splits_to_sizes: Mapping[str, int]
  num_classes: int
  ignore_label: int
  class_names: Tuple[str, ...]
  colormap_name: str
  split_aliases: Mapping[str, str] = dataclasses.field(default_factory=dict)
  colors: Optional[Tuple[Tuple[int, int, int], ...]] = None
  info_file: Optional[str] = None
  class_pixel_counts: Optional[Mapping[str, Tuple[int, ...]]] = None

  def __post_init__(self):
    if len(self.class_names) != self.num_classes:
      raise ValueError(f'Dataset {self.name}: {len(self.class_names)} class names for '
                       f'{self.num_classes} classes.')
    if self.colors is not None and len(self.colors) != self.num_classes:
      raise ValueError(f'Dataset {self.name}: {len(self.colors)} colours for '
                       f'{self.num_classes} classes.')

  @property
  def flag(self) -> str:
    """How messages name this dataset: `--dataset=<name>`, with its file when custom."""
    if self.info_file:
      return f'--dataset={self.name} ({self.info_file})'
    return f'--dataset={self.name}'

  def canonical_split(self, split):
    """Returns the split name with aliases resolved.

    Args:
      split: A split name or one of its aliases (e.g. 'train' for Cityscapes'
        'train_fine').

    Returns:
      The canonical split name.

    Raises:
      ValueError: If the split is unknown for this dataset.
    """
    split = self.split_aliases.get(split, split)
    if split not in self.splits_to_sizes:
      raise ValueError(f'Unknown split {split!r} for dataset {self.name!r}; expected one of '
                       f'{sorted(self.splits_to_sizes)}.')
    return split

  def colormap(self):
    """Returns this dataset's uint8 [256, 3] colormap.

    A custom dataset's own colours come first, the PASCAL colours after them.
    """
    if self.colors is not None:
      return with_colors(self.colors)
    return colormap(self.colormap_name)


_CITYSCAPES_CLASSES = (
    'road', 'sidewalk', 'building', 'wall', 'fence', 'pole', 'traffic light',
    'traffic sign', 'vegetation', 'terrain', 'sky', 'person', 'rider', 'car',
    'truck', 'bus', 'train', 'motorcycle', 'bicycle')

_PASCAL_CLASSES = (
    'background', 'aeroplane', 'bicycle', 'bird', 'boat', 'bottle', 'bus', 'car',
    'cat', 'chair', 'cow', 'diningtable', 'dog', 'horse', 'motorbike', 'person',
    'pottedplant', 'sheep', 'sofa', 'train', 'tvmonitor')

_PERSON_PART_CLASSES = (
    'background', 'head', 'torso', 'upper arm', 'lower arm', 'upper leg', 'lower leg')

# The demo classes; `deeplab_dpc.data.demo` draws them.
DEMO_CLASSES = ('background', 'disc', 'square', 'triangle', 'ring', 'dot grid')

CITYSCAPES = DatasetDescriptor(
    name='cityscapes',
    # Sizes of the official release; train_extra holds 19998 coarsely labelled images.
    splits_to_sizes={
        'train_fine': 2975,
        'val_fine': 500,
        'test_fine': 1525,
        'trainval_fine': 3475,
        'train_coarse': 22973,
        'trainval_coarse': 23473,
    },
    num_classes=19,
    ignore_label=constants.IGNORE_LABEL,
    class_names=_CITYSCAPES_CLASSES,
    colormap_name='cityscapes',
    # Names of the earliest original release.
    split_aliases={'train': 'train_fine', 'val': 'val_fine', 'test': 'test_fine',
                   'trainval': 'trainval_fine'},
)

PASCAL_VOC_SEG = DatasetDescriptor(
    name='pascal_voc_seg',
    splits_to_sizes={'train': 1464, 'train_aug': 10582, 'trainval': 2913, 'val': 1449},
    num_classes=21,
    ignore_label=constants.IGNORE_LABEL,
    class_names=_PASCAL_CLASSES,
    colormap_name='pascal',
)

# Split sizes as reported with the dataset (Xia et al., "Zoom better to see
# clearer", ECCV 2016) and used by Chen et al., "Attention to scale", CVPR 2016:
# 1716 training and 1817 test images, the latter called `val` here.
PASCAL_PERSON_PART = DatasetDescriptor(
    name='pascal_person_part',
    splits_to_sizes={'train': 1716, 'val': 1817},
    num_classes=7,
    ignore_label=constants.IGNORE_LABEL,
    class_names=_PERSON_PART_CLASSES,
    colormap_name='person_part',
)

DEMO = DatasetDescriptor(
    name='demo',
    splits_to_sizes={'train': 320, 'val': 80, 'pretrain': 4000, 'pretrain_val': 80},
    num_classes=len(DEMO_CLASSES),
    ignore_label=constants.IGNORE_LABEL,
    class_names=DEMO_CLASSES,
    colormap_name='demo',
)

BUILT_IN_DESCRIPTORS = (CITYSCAPES, PASCAL_VOC_SEG, PASCAL_PERSON_PART, DEMO)
_DESCRIPTORS = {d.name: d for d in BUILT_IN_DESCRIPTORS}

DATASET_NAMES = tuple(_DESCRIPTORS)


CUSTOM_DATASET = dataset_info.CUSTOM_DATASET
DEFAULT_DATASET = PASCAL_VOC_SEG.name


def resolve_dataset_name(name, dataset_dir=None, default=DEFAULT_DATASET):
  """The dataset a `--dataset` / `--dataset_dir` pair means.

  A folder holding `dataset_info.json` needs no `--dataset`: with `name` unset
  ('' or None) or 'custom' it is the custom dataset the file describes. Without
  the file an unset name is `default` (the original's 'pascal_voc_seg' for
  train/eval/vis/export). A built-in name is kept as given, file or not.

  Args:
    name: The `--dataset` value, or None / '' when not given.
    dataset_dir: The `--dataset_dir` value.
    default: The name of an unset `--dataset` without a `dataset_info.json`.

  Returns:
    'custom' or a built-in dataset name.

  Raises:
    FileNotFoundError: `--dataset=custom` and `dataset_dir` has no
      `dataset_info.json` (the message names `--dataset_dir` and the file).
  """
  if name == CUSTOM_DATASET:
    if not dataset_info.has_dataset_info(dataset_dir):
      where = (f'--dataset_dir={dataset_dir} has no {dataset_info.DATASET_INFO_FILE}'
               if dataset_dir else f'no --dataset_dir holding {dataset_info.DATASET_INFO_FILE}'
               ' is given')
      raise FileNotFoundError(
          f'--dataset={CUSTOM_DATASET} reads the dataset from '
          f'{dataset_info.DATASET_INFO_FILE}, but {where}: build the folder with '
          'datasets/build_custom_data.py, or name a built-in dataset with --dataset')
    return CUSTOM_DATASET
  if not name:
    return CUSTOM_DATASET if dataset_info.has_dataset_info(dataset_dir) else default
  return name


def custom_descriptor(dataset_dir):
  """The descriptor of a folder holding `dataset_info.json` (see `dataset_info`).

  Raises:
    FileNotFoundError / ValueError: No file, or a bad field (named, with the file).
  """
  info = dataset_info.read_dataset_info(dataset_dir)
  colors = info.get('colormap')
  counts = info.get('class_pixel_counts')
  return DatasetDescriptor(
      name=CUSTOM_DATASET,
      splits_to_sizes=dict(info['splits_to_sizes']),
      num_classes=info['num_classes'],
      ignore_label=info['ignore_label'],
      class_names=tuple(info['class_names']),
      # Classes without a colour of their own (none listed) get PASCAL's.
      colormap_name='pascal',
      colors=tuple(tuple(c) for c in colors) if colors is not None else None,
      info_file=dataset_info.info_path(dataset_dir),
      class_pixel_counts=({k: tuple(v) for k, v in counts.items()}
                          if counts is not None else None))


def get_dataset_descriptor(name, dataset_dir=None):
  """Returns the descriptor of the dataset called `name`.

  Args:
    name: A `--dataset` value: 'cityscapes', 'pascal_voc_seg',
      'pascal_person_part', 'demo', or 'custom' / '' / None for the
      `dataset_info.json` of `dataset_dir` (see `resolve_dataset_name`).
    dataset_dir: The `--dataset_dir` value; read only for a custom dataset.

  Returns:
    The `DatasetDescriptor`.

  Raises:
    ValueError: If the name is unknown; the message names the `--dataset` flag.
      Or a bad `dataset_info.json` field (named, with the file).
    FileNotFoundError: 'custom' and `dataset_dir` has no `dataset_info.json`.
  """
  name = resolve_dataset_name(name, dataset_dir)
  if name == CUSTOM_DATASET:
    return custom_descriptor(dataset_dir)
  if name not in _DESCRIPTORS:
    raise ValueError(f'--dataset={name!r} is not a known dataset; expected one of '
                     f'{", ".join(DATASET_NAMES + (CUSTOM_DATASET,))}.')
  return _DESCRIPTORS[name]
