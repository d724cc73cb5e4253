"""Loss weights per class from a dataset's pixel counts (`--label_weights_from`).

A custom dataset's `dataset_info.json` records how many pixels of each class
every split holds; the weights are derived from the training split's counts,
so a rare class can weigh as much in the loss as a common one:

* `median_frequency` (Eigen & Fergus, ICCV 2015): weight = median frequency /
  class frequency, the frequencies over the split's labelled pixels (the file
  holds totals, not per-image counts, so a class's frequency is over all
  images rather than only those that show it).
* `inverse_frequency`: weight = labelled pixels / (classes present x class
  pixels), so every present class carries the same total weight and the
  weights' pixel-weighted mean is 1.

A class with no pixels in the split gets weight 0 (a warning names it): it
never occurs in the loss anyway, and an infinite weight would be meaningless.
"""

from absl import logging
import numpy as np

NONE = 'none'
MEDIAN_FREQUENCY = 'median_frequency'
INVERSE_FREQUENCY = 'inverse_frequency'
METHODS = (NONE, MEDIAN_FREQUENCY, INVERSE_FREQUENCY)


def weights_from_pixel_counts(counts, method: str, class_names=None,
                              flag: str = 'label_weights_from') -> list[float]:
  """One loss weight per class from per-class pixel counts.

  Args:
    counts: Pixels of each class (the ignore label not counted).
    method: `median_frequency` or `inverse_frequency` (module docstring).
    class_names: Names for the warning about absent classes.
    flag: The flag named in errors and warnings.

  Returns:
    A list of floats, 0 for classes without pixels.

  Raises:
    ValueError: An unknown method, or no class has any pixel (naming `--flag`).
  """
  counts = np.asarray(counts, dtype=np.float64)
  if method not in (MEDIAN_FREQUENCY, INVERSE_FREQUENCY):
    raise ValueError(f'--{flag} must be one of {", ".join(METHODS)}, got {method!r}')
  present = counts > 0
  if not present.any():
    raise ValueError(f'--{flag}={method}: no class has any labelled pixel')
  if not present.all():
    names = class_names or [str(c) for c in range(len(counts))]
    absent = [f'{c} ({names[c]})' for c in np.flatnonzero(~present)]
    logging.warning('--%s=%s: class %s has no pixels in the split: weight 0', flag, method,
                    ', '.join(absent))
  weights = np.zeros_like(counts)
  frequencies = counts[present] / counts.sum()
  if method == MEDIAN_FREQUENCY:
    weights[present] = np.median(frequencies) / frequencies
  else:
    weights[present] = 1.0 / (present.sum() * frequencies)
  return [float(w) for w in weights]


def label_weights_from_dataset(descriptor, method: str, split: str,
                               flag: str = 'label_weights_from') -> list[float] | None:
  """`weights_from_pixel_counts` of a dataset's split; None for `none`.

  Args:
    descriptor: The `DatasetDescriptor` (a custom dataset's records pixel counts).
    method: One of `METHODS`.
    split: The training split whose counts are used.
    flag: The flag named in errors.

  Raises:
    ValueError: An unknown method, or the dataset has no pixel counts for the
      split (naming `--flag`, the dataset and its file).
  """
  if method == NONE:
    return None
  if method not in METHODS:
    raise ValueError(f'--{flag} must be one of {", ".join(METHODS)}, got {method!r}')
  counts = (descriptor.class_pixel_counts or {}).get(descriptor.canonical_split(split))
  if counts is None:
    recorded = sorted(descriptor.class_pixel_counts or {})
    has = f'has them for {", ".join(recorded)} only' if recorded else 'has none'
    raise ValueError(f'--{flag}={method} needs the pixel counts of split {split!r} '
                     f'(class_pixel_counts of dataset_info.json) but {descriptor.flag} {has}: '
                     'build the folder with datasets/build_custom_data.py, or give '
                     '--label_weights')
  return weights_from_pixel_counts(counts, method, descriptor.class_names, flag)


def resolve_label_weights(label_weights, method: str, descriptor, split: str,
                          weights_flag: str = 'label_weights',
                          method_flag: str = 'label_weights_from'):
  """The loss's `label_weights` of a --label_weights / --label_weights_from pair.

  Args:
    label_weights: The --label_weights values (floats) or None.
    method: The --label_weights_from value.
    descriptor: The dataset's `DatasetDescriptor`.
    split: The training split.
    weights_flag: Name of the --label_weights flag, for messages.
    method_flag: Name of the --label_weights_from flag, for messages.

  Returns:
    1.0 (no weighting), or a list of one weight per class.

  Raises:
    ValueError: Both flags given, or see `label_weights_from_dataset`.
  """
  derived = label_weights_from_dataset(descriptor, method, split, method_flag)
  if derived is not None and label_weights:
    raise ValueError(f'--{weights_flag} and --{method_flag}={method} both set the class '
                     'weights: give one of them')
  if derived is not None:
    logging.info('--%s=%s: class weights %s', method_flag, method,
                 ', '.join(f'{n} {w:.3g}' for n, w in zip(descriptor.class_names, derived)))
    return derived
  return list(label_weights) if label_weights else 1.0
