"""Dataset descriptors: splits and their sizes, classes, ignore label, colormap.

The one place that knows what each dataset looks like. Numbers for Cityscapes
and PASCAL VOC 2012 are those of the original `datasets/data_generator.py`.
"""

import dataclasses
from typing import Mapping, Tuple

from deeplab_dpc import constants
from deeplab_dpc.data.colormaps import colorize  # pylint: disable=unused-import
from deeplab_dpc.data.colormaps import colormap  # pylint: disable=unused-import


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
  """
  name: str
  splits_to_sizes: Mapping[str, int]
  num_classes: int
  ignore_label: int
  class_names: Tuple[str, ...]
  colormap_name: str
  split_aliases: Mapping[str, str] = dataclasses.field(default_factory=dict)

  def __post_init__(self):
    if len(self.class_names) != self.num_classes:
      raise ValueError(f'Dataset {self.name}: {len(self.class_names)} class names for '
                       f'{self.num_classes} classes.')

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
    """Returns this dataset's uint8 [256, 3] colormap."""
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
    splits_to_sizes={'train': 320, 'val': 80, 'pretrain': 4000},
    num_classes=len(DEMO_CLASSES),
    ignore_label=constants.IGNORE_LABEL,
    class_names=DEMO_CLASSES,
    colormap_name='demo',
)

_DESCRIPTORS = {d.name: d for d in (CITYSCAPES, PASCAL_VOC_SEG, PASCAL_PERSON_PART, DEMO)}

DATASET_NAMES = tuple(_DESCRIPTORS)


def get_dataset_descriptor(name):
  """Returns the descriptor of the dataset called `name`.

  Args:
    name: A `--dataset` value: 'cityscapes', 'pascal_voc_seg',
      'pascal_person_part' or 'demo'.

  Returns:
    The `DatasetDescriptor`.

  Raises:
    ValueError: If the name is unknown; the message names the `--dataset` flag.
  """
  if name not in _DESCRIPTORS:
    raise ValueError(f'--dataset={name!r} is not a known dataset; expected one of '
                     f'{", ".join(DATASET_NAMES)}.')
  return _DESCRIPTORS[name]

