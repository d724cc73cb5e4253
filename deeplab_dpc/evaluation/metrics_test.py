"""Confusion matrix and IoU: by hand, against Keras' MeanIoU, streaming = all at once."""

import keras
import numpy as np
import pytest

from deeplab_dpc.evaluation import metrics


def test_confusion_by_hand_and_ignore_label():
  labels = np.array([[0, 0, 1], [2, 255, 1]])
  predictions = np.array([[0, 1, 1], [2, 0, 0]])
  matrix = metrics.confusion_matrix(labels, predictions, 3)
  np.testing.assert_array_equal(matrix, [[1, 1, 0], [1, 1, 0], [0, 0, 1]])
  # IoU: class 0: 1 / (2 + 2 - 1), class 1: 1 / (2 + 2 - 1), class 2: 1 / 1.
  np.testing.assert_allclose(metrics.per_class_iou(matrix), [1 / 3, 1 / 3, 1.0])
  assert metrics.mean_iou(matrix) == pytest.approx((1 / 3 + 1 / 3 + 1) / 3)
  assert metrics.pixel_accuracy(matrix) == pytest.approx(3 / 5)


def test_absent_classes():
  # Class 2 nowhere; class 3 predicted but not labelled.
  matrix = metrics.confusion_matrix([0, 0, 1, 1], [0, 3, 1, 1], 4)
  iou = metrics.per_class_iou(matrix)
  np.testing.assert_allclose(iou, [0.5, 1.0, np.nan, 0.0])
  # As tf.metrics.mean_iou: the mean over classes present in labels or predictions.
  assert metrics.mean_iou(matrix) == pytest.approx(1.5 / 3)
  # The original's per-class summaries: NaN unless the class is labelled somewhere.
  np.testing.assert_allclose(metrics.original_per_class_iou(matrix), [0.5, 1.0, np.nan, np.nan])
  assert metrics.mean_iou(np.zeros((3, 3))) == 0.0
  assert metrics.pixel_accuracy(np.zeros((3, 3))) == 0.0


def test_labels_beyond_the_class_count_are_errors_naming_the_source():
  with pytest.raises(ValueError, match=r'frankfurt_1\.png: label value 7 is outside \[0, 6\)'):
    metrics.confusion_matrix([1, 7, 255], [1, 1, 1], 6, source='frankfurt_1.png')
  with pytest.raises(ValueError, match='x: prediction outside'):
    metrics.confusion_matrix([1, 1], [1, 6], 6, source='x')
  with pytest.raises(ValueError, match='2 labels but 3 predictions'):
    metrics.confusion_matrix([1, 1], [1, 1, 1], 6)
  # Another ignore label: 255 is then an ordinary out-of-range value.
  with pytest.raises(ValueError, match='label value 255'):
    metrics.confusion_matrix([255, 0], [0, 0], 2, ignore_label=0)


def test_matches_keras_mean_iou_and_streams_exactly():
  rng = np.random.default_rng(0)
  num_classes = 7
  labels = rng.integers(0, num_classes, size=(5, 23, 31))
  labels[rng.random(labels.shape) < 0.1] = 255
  predictions = rng.integers(0, num_classes, size=labels.shape)
  predictions[labels == 3] = 3  # Make one class easy.
  streaming = metrics.StreamingConfusion(num_classes)
  for i in range(labels.shape[0]):
    streaming.update(labels[i], predictions[i], source=f'image {i}')
  whole = metrics.confusion_matrix(labels, predictions, num_classes)
  np.testing.assert_array_equal(streaming.matrix, whole)
  assert streaming.matrix.sum() == (labels != 255).sum()

  keep = labels != 255
  reference = keras.metrics.MeanIoU(num_classes=num_classes)
  reference.update_state(np.where(keep, labels, 0), predictions, sample_weight=keep)
  result = streaming.result()
  assert result['miou'] == pytest.approx(float(reference.result()), abs=1e-6)
  assert result['per_class_iou'][3] == pytest.approx((labels == 3).sum() / (
      (labels == 3).sum() + ((predictions == 3) & keep & (labels != 3)).sum()))
  assert result['pixel_accuracy'] == pytest.approx((predictions == labels)[keep].mean())


def test_result_reports_absent_classes_as_none():
  streaming = metrics.StreamingConfusion(3)
  streaming.update([0, 1], [0, 1])
  result = streaming.result()
  assert result['per_class_iou'] == [1.0, 1.0, None]
  assert result['miou'] == 1.0
