"""Streaming confusion matrix and mean intersection-over-union.

As the original (`tf.metrics.mean_iou` over pixels whose label is not the ignore
label), but kept as a confusion matrix so per-class IoU, pixel accuracy and the
merge of partial results across workers or batches are exact.
"""

import numpy as np

from deeplab_dpc import constants


def confusion_matrix(labels, predictions, num_classes: int,
                     ignore_label: int = constants.IGNORE_LABEL, source: str = 'labels'):
  """[num_classes, num_classes] int64 counts, rows = ground truth, cols = prediction.

  Pixels labelled `ignore_label` are skipped. Any other label outside
  [0, num_classes) is an error naming `source` (a file or record).

  Args:
    labels: Integer array (any shape) of ground-truth classes.
    predictions: Integer array of the same shape.
    num_classes: Number of classes.
    ignore_label: Label value excluded from the counts.
    source: What the labels came from, for the error message.

  Raises:
    ValueError: on shape mismatch or out-of-range labels or predictions.
  """
  labels = np.asarray(labels).reshape(-1).astype(np.int64)
  predictions = np.asarray(predictions).reshape(-1).astype(np.int64)
  if labels.shape != predictions.shape:
    raise ValueError(f'{source}: {labels.size} labels but {predictions.size} predictions')
  keep = labels != ignore_label
  labels, predictions = labels[keep], predictions[keep]
  bad = (labels < 0) | (labels >= num_classes)
  if bad.any():
    raise ValueError(f'{source}: label value {int(labels[bad][0])} is outside '
                     f'[0, {num_classes}) and not the ignore label {ignore_label}')
  if predictions.size and (predictions.min() < 0 or predictions.max() >= num_classes):
    raise ValueError(f'{source}: prediction outside [0, {num_classes})')
  return np.bincount(labels * num_classes + predictions,
                     minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def per_class_iou(confusion) -> np.ndarray:
  """IoU of each class; NaN for a class absent from both labels and predictions."""
  confusion = np.asarray(confusion, np.float64)
  true_positive = np.diag(confusion)
  union = confusion.sum(0) + confusion.sum(1) - true_positive
  with np.errstate(divide='ignore', invalid='ignore'):
    return np.where(union > 0, true_positive / union, np.nan)


def original_per_class_iou(confusion) -> np.ndarray:
  """IoU of each class as the original eval.py's per-class summaries compute it.

  The original writes NaN for a class absent from the ground truth (tp + fn = 0),
  even when it was predicted; `per_class_iou` gives such a class 0 instead, so
  that the mean of its non-NaN entries is `mean_iou`.
  """
  confusion = np.asarray(confusion, np.float64)
  true_positive = np.diag(confusion)
  labelled = confusion.sum(1)
  union = confusion.sum(0) + labelled - true_positive
  with np.errstate(divide='ignore', invalid='ignore'):
    return np.where(labelled > 0, true_positive / union, np.nan)


def mean_iou(confusion) -> float:
  """Mean IoU over the classes present in labels or predictions (as `tf.metrics.mean_iou`)."""
  iou = per_class_iou(confusion)
  present = ~np.isnan(iou)
  return float(iou[present].mean()) if present.any() else 0.0


def pixel_accuracy(confusion) -> float:
  """Fraction of the counted (non-ignored) pixels predicted right; 0 if none."""
  confusion = np.asarray(confusion, np.float64)
  total = confusion.sum()
  return float(np.trace(confusion) / total) if total else 0.0


class StreamingConfusion:
  """Accumulates a confusion matrix over batches."""

  def __init__(self, num_classes: int, ignore_label: int = constants.IGNORE_LABEL):
    self.num_classes = num_classes
    self.ignore_label = ignore_label
    self.matrix = np.zeros((num_classes, num_classes), np.int64)

  def update(self, labels, predictions, source: str = 'labels') -> None:
    self.matrix += confusion_matrix(labels, predictions, self.num_classes,
                                    self.ignore_label, source)

  def result(self) -> dict:
    """{'miou', 'per_class_iou' (list, NaN -> None), 'pixel_accuracy'}."""
    iou = per_class_iou(self.matrix)
    return {
        'miou': mean_iou(self.matrix),
        'per_class_iou': [None if np.isnan(v) else float(v) for v in iou],
        'pixel_accuracy': pixel_accuracy(self.matrix),
    }
