"""Class weights from dataset_info.json pixel counts."""

from absl import logging
import numpy as np
import pytest

from deeplab_dpc.data import dataset_info
from deeplab_dpc.data import descriptors
from deeplab_dpc.training import class_weights


def test_median_frequency():
  # Frequencies 0.1, 0.3, 0.6: median 0.3.
  weights = class_weights.weights_from_pixel_counts([10, 30, 60], 'median_frequency')
  np.testing.assert_allclose(weights, [3.0, 1.0, 0.5])


def test_inverse_frequency_gives_every_class_the_same_total_weight():
  counts = np.array([10, 30, 60])
  weights = np.array(class_weights.weights_from_pixel_counts(counts, 'inverse_frequency'))
  np.testing.assert_allclose(weights * counts, [100 / 3] * 3)
  np.testing.assert_allclose((weights * counts).sum() / counts.sum(), 1.0)


def test_an_absent_class_gets_zero_and_a_warning(monkeypatch):
  warnings = []
  monkeypatch.setattr(logging, 'warning', lambda fmt, *args: warnings.append(fmt % args))
  weights = class_weights.weights_from_pixel_counts([10, 0, 30], 'median_frequency',
                                                    ['sky', 'grass', 'cow'])
  # The median is over the present classes only (0.25 and 0.75).
  np.testing.assert_allclose(weights, [2.0, 0.0, 2.0 / 3.0])
  assert warnings == ['--label_weights_from=median_frequency: class 1 (grass) has no pixels '
                      'in the split: weight 0']


def test_no_labelled_pixel_and_unknown_methods_are_errors():
  with pytest.raises(ValueError, match='--label_weights_from=inverse_frequency: no class'):
    class_weights.weights_from_pixel_counts([0, 0], 'inverse_frequency')
  with pytest.raises(ValueError, match='--label_weights_from must be one of none, '
                     'median_frequency, inverse_frequency'):
    class_weights.weights_from_pixel_counts([1, 2], 'mean')


def _descriptor(tmp_path, counts):
  dataset_info.write_dataset_info(str(tmp_path), name='d', class_names=['a', 'b', 'c'],
                                  ignore_label=255, splits_to_sizes={'train': 2, 'val': 1},
                                  class_pixel_counts=counts)
  return descriptors.get_dataset_descriptor(None, str(tmp_path))


def test_from_the_dataset(tmp_path):
  descriptor = _descriptor(tmp_path, {'train': [10, 30, 60], 'val': [1, 1, 1]})
  np.testing.assert_allclose(
      class_weights.label_weights_from_dataset(descriptor, 'median_frequency', 'train'),
      [3.0, 1.0, 0.5])
  assert class_weights.label_weights_from_dataset(descriptor, 'none', 'train') is None
  assert class_weights.resolve_label_weights(None, 'none', descriptor, 'train') == 1.0
  assert class_weights.resolve_label_weights([1.0, 2.0, 3.0], 'none', descriptor,
                                             'train') == [1.0, 2.0, 3.0]
  np.testing.assert_allclose(
      class_weights.resolve_label_weights(None, 'inverse_frequency', descriptor, 'val'),
      [1.0, 1.0, 1.0])
  with pytest.raises(ValueError, match='--label_weights and '
                     '--label_weights_from=median_frequency both set the class weights'):
    class_weights.resolve_label_weights([1.0, 1.0, 1.0], 'median_frequency', descriptor,
                                        'train')


def test_a_dataset_without_counts_is_an_error_naming_the_flag(tmp_path):
  descriptor = _descriptor(tmp_path / 'none', None)
  with pytest.raises(ValueError, match=(
      r"--label_weights_from=median_frequency needs the pixel counts of split 'train' "
      r'\(class_pixel_counts of dataset_info.json\) but --dataset=custom \(.*\) has none')):
    class_weights.label_weights_from_dataset(descriptor, 'median_frequency', 'train')
  descriptor = _descriptor(tmp_path / 'val', {'val': [1, 1, 1]})
  with pytest.raises(ValueError, match='has them for val only'):
    class_weights.label_weights_from_dataset(descriptor, 'median_frequency', 'train')
  # A built-in dataset records no pixel counts.
  with pytest.raises(ValueError, match='--dataset=demo has none'):
    class_weights.label_weights_from_dataset(descriptors.DEMO, 'inverse_frequency', 'train',
                                             flag='label_weights_from')
