"""Label colormaps of the original `utils/get_dataset_colormap.py`.

Each colormap is a uint8 array of shape [256, 3] so any uint8 label map,
including the ignore value 255, can be indexed into it directly.
"""

import numpy as np

_COLORMAP_SIZE = 256


def _pascal_colormap():
  """The PASCAL VOC bit-shift colormap (the devkit's `labelcolormap.m`)."""
  colormap = np.zeros((_COLORMAP_SIZE, 3), dtype=np.int64)
  indices = np.arange(_COLORMAP_SIZE, dtype=np.int64)
  for shift in reversed(range(8)):
    for channel in range(3):
      colormap[:, channel] |= ((indices >> channel) & 1) << shift
    indices >>= 3
  return colormap.astype(np.uint8)


def _cityscapes_colormap():
  """Official Cityscapes colours of the 19 train ids, taken from cityscapesscripts."""
  # The official label table is the single source of truth for the colours;
  # the original release hard-coded the same 19 triples.
  from cityscapesscripts.helpers import labels as cs_labels  # pylint: disable=g-import-not-at-top
  colormap = np.zeros((_COLORMAP_SIZE, 3), dtype=np.uint8)
  for label in cs_labels.labels:
    if 0 <= label.trainId < 255:
      colormap[label.trainId] = label.color
  return colormap


_COLORMAP_FACTORIES = {
    'pascal': _pascal_colormap,
    'cityscapes': _cityscapes_colormap,
    # Person-Part and the demo set reuse the PASCAL colours, as is customary for
    # PASCAL-derived part datasets.
    'person_part': _pascal_colormap,
    'demo': _pascal_colormap,
}

COLORMAP_NAMES = tuple(sorted(_COLORMAP_FACTORIES))


def colormap(name):
  """Returns the colormap called `name`.

  Args:
    name: One of `COLORMAP_NAMES` ('cityscapes', 'demo', 'pascal',
      'person_part').

  Returns:
    A uint8 numpy array of shape [256, 3].

  Raises:
    ValueError: If `name` is not a known colormap.
  """
  if name not in _COLORMAP_FACTORIES:
    raise ValueError(f'Unknown colormap {name!r}; expected one of {COLORMAP_NAMES}.')
  return _COLORMAP_FACTORIES[name]()


def with_colors(colors):
  """A [256, 3] colormap: `colors` for the first classes, the PASCAL colours after.

  Args:
    colors: [N, 3] RGB values in [0, 255], N <= 256 (a dataset's own class
      colours, e.g. `dataset_info.json`'s `colormap`).

  Returns:
    A uint8 numpy array of shape [256, 3].

  Raises:
    ValueError: If `colors` is not [N, 3] with N <= 256 and values in [0, 255].
  """
  colors = np.asarray(colors)
  if (colors.ndim != 2 or colors.shape[1] != 3 or len(colors) > _COLORMAP_SIZE or
      (colors.size and (colors.min() < 0 or colors.max() > 255))):
    raise ValueError(f'A colormap must be [N <= {_COLORMAP_SIZE}, 3] RGB values in [0, 255], '
                     f'got shape {colors.shape}.')
  out = _pascal_colormap()
  out[:len(colors)] = colors.astype(np.uint8)
  return out


def colorize(label_map, name):
  """Maps a label map to RGB colours.

  Args:
    label_map: Integer array of shape [H, W] or [H, W, 1] with values in
      [0, 255].
    name: Colormap name (see `colormap`), or an [N, 3] array of colours (see
      `with_colors`; a custom dataset's `descriptor.colormap()`).

  Returns:
    A uint8 array of shape [H, W, 3].

  Raises:
    ValueError: If the label map has the wrong rank or values outside [0, 255].
  """
  label_map = np.asarray(label_map)
  if label_map.ndim == 3 and label_map.shape[-1] == 1:
    label_map = label_map[..., 0]
  if label_map.ndim != 2:
    raise ValueError(f'Expected a label map of shape [H, W] or [H, W, 1], got {label_map.shape}.')
  if label_map.size and (label_map.min() < 0 or label_map.max() >= _COLORMAP_SIZE):
    raise ValueError(f'Label values must be in [0, {_COLORMAP_SIZE - 1}], got range '
                     f'[{label_map.min()}, {label_map.max()}].')
  table = colormap(name) if isinstance(name, str) else with_colors(name)
  return table[label_map.astype(np.int64)]
