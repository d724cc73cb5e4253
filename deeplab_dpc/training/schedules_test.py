"""Learning-rate policies equal the original's formulas."""

import pytest

from deeplab_dpc.training import schedules


def test_poly():
  schedule = schedules.DeepLabLearningRate('poly', 0.01, 100, learning_power=0.9)
  for step in (0, 1, 50, 99, 100, 150):
    expected = 0.01 * (1 - min(step, 100) / 100) ** 0.9
    assert float(schedule(step)) == pytest.approx(expected, rel=1e-5, abs=1e-12)


def test_poly_with_slow_start_and_end_rate():
  schedule = schedules.DeepLabLearningRate(
      'poly', 0.01, 110, slow_start_step=10, slow_start_learning_rate=1e-4,
      end_learning_rate=1e-3)
  assert float(schedule(0)) == pytest.approx(1e-4)
  assert float(schedule(9)) == pytest.approx(1e-4)
  # After the slow start the poly runs over the remaining 100 steps.
  assert float(schedule(10)) == pytest.approx(0.01)
  assert float(schedule(60)) == pytest.approx((0.01 - 1e-3) * 0.5 ** 0.9 + 1e-3, rel=1e-5)
  assert float(schedule(110)) == pytest.approx(1e-3)


def test_step():
  schedule = schedules.DeepLabLearningRate('step', 0.1, 1000, learning_rate_decay_step=10,
                                           learning_rate_decay_factor=0.5)
  assert float(schedule(9)) == pytest.approx(0.1)
  assert float(schedule(10)) == pytest.approx(0.05)
  assert float(schedule(25)) == pytest.approx(0.025)


@pytest.mark.parametrize('kwargs, flag', [
    (dict(learning_policy='cosine'), '--learning_policy'),
    (dict(training_number_of_steps=0), '--training_number_of_steps'),
    (dict(base_learning_rate=0.0), '--base_learning_rate'),
    (dict(slow_start_step=100, training_number_of_steps=100), '--slow_start_step'),
])
def test_bad_flags(kwargs, flag):
  with pytest.raises(ValueError, match=flag):
    schedules.DeepLabLearningRate(**kwargs)


def test_config_round_trip():
  schedule = schedules.DeepLabLearningRate('poly', 0.02, 50, slow_start_step=5)
  clone = schedules.DeepLabLearningRate(**schedule.get_config())
  assert [float(clone(s)) for s in range(0, 60, 7)] == [float(schedule(s))
                                                       for s in range(0, 60, 7)]
