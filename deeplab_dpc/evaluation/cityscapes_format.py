"""Cityscapes predictions in the official benchmark format.

The benchmark (and cityscapesscripts' `evalPixelLevelSemanticLabeling`) reads one
single-channel PNG per image holding Cityscapes *label ids* (0-33), found by the
pattern `<city>_<sequence>_<frame>*.png`. The model predicts the 19 *train ids*;
the mapping comes from cityscapesscripts' label table (the original vis.py
hard-coded the same list).
"""

import functools

import numpy as np


@functools.lru_cache(maxsize=None)
def train_id_to_label_id() -> np.ndarray:
  """uint8 [19] table train id -> label id, from the official label table."""
  from cityscapesscripts.helpers import labels as cs_labels  # pylint: disable=g-import-not-at-top
  table = {}
  for label in cs_labels.labels:
    if 0 <= label.trainId < 255 and label.id >= 0:
      table.setdefault(label.trainId, label.id)
  out = np.array([table[t] for t in range(len(table))], np.uint8)
  out.flags.writeable = False
  return out


def to_label_ids(train_ids) -> np.ndarray:
  """Maps a train-id prediction [H, W] to label ids (uint8), as the benchmark expects.

  Raises:
    ValueError: for values that are not train ids 0-18.
  """
  train_ids = np.asarray(train_ids)
  table = train_id_to_label_id()
  if train_ids.size and (train_ids.min() < 0 or train_ids.max() >= len(table)):
    raise ValueError(f'Cityscapes predictions must be train ids in [0, {len(table)}), got '
                     f'[{train_ids.min()}, {train_ids.max()}]')
  return table[train_ids.astype(np.int64)]


def result_file_name(image_name: str) -> str:
  """'<image name>.png': the record's image name is `<city>_<seq>_<frame>`, which the
  benchmark's pattern `<city>_<seq>_<frame>*.png` matches."""
  return image_name + '.png'
