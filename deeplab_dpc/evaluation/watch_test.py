"""Finding checkpoints: resolution, global steps, the watching loop and its waits."""

import os

import numpy as np
import pytest
import tensorflow as tf

from deeplab_dpc.evaluation import watch
from deeplab_dpc.testing import recipe_checkpoint


def _training_checkpoint(log_dir, step, store_step=True, max_to_keep=5):
  kwargs = {'w': tf.Variable(1.0)}
  if store_step:
    kwargs['global_step'] = tf.Variable(step, dtype=tf.int64)
  manager = tf.train.CheckpointManager(tf.train.Checkpoint(**kwargs), str(log_dir),
                                       max_to_keep=max_to_keep)
  return manager.save(checkpoint_number=step)


class FakeTime:
  """A clock that only moves when slept on, and records the sleeps."""

  def __init__(self):
    self.now = 0.0
    self.sleeps = []

  def clock(self):
    return self.now

  def sleep(self, seconds):
    self.sleeps.append(seconds)
    self.now += seconds


def test_global_step_from_the_checkpoint_or_its_name(tmp_path):
  ours = _training_checkpoint(tmp_path / 'a', 1200)
  assert ours.endswith('ckpt-1200') and watch.global_step_of(ours) == 1200
  # The variable wins over the name.
  renamed = _training_checkpoint(tmp_path / 'b', 5)
  for suffix in ('.index', '.data-00000-of-00001'):
    os.rename(renamed + suffix, str(tmp_path / 'b' / 'ckpt-99') + suffix)
  assert watch.global_step_of(str(tmp_path / 'b' / 'ckpt-99')) == 5
  assert watch.global_step_of(_training_checkpoint(tmp_path / 'c', 42, store_step=False)) == 42
  tf1 = recipe_checkpoint.write_tf1_checkpoint(
      {'global_step': np.array(30000, np.int64), 'w': np.zeros(2, np.float32)},
      str(tmp_path / 'tf1' / 'model.ckpt'))
  assert watch.global_step_of(tf1) == 30000
  plain = recipe_checkpoint.write_tf1_checkpoint({'w': np.zeros(2, np.float32)},
                                                 str(tmp_path / 'tf1' / 'model.ckpt'))
  assert watch.global_step_of(plain) == 0
  assert watch.global_step_of(str(tmp_path / 'missing-17')) == 17


def test_resolve_checkpoint(tmp_path):
  path = _training_checkpoint(tmp_path, 3)
  assert watch.resolve_checkpoint(path, 'checkpoint_path') == path
  assert watch.resolve_checkpoint(path + '.index', 'checkpoint_path') == path
  assert watch.resolve_checkpoint(path + '.data-00000-of-00001', 'checkpoint_path') == path
  assert watch.resolve_checkpoint(str(tmp_path), 'checkpoint_path') == path
  with pytest.raises(FileNotFoundError, match=r'--checkpoint_path: no checkpoint at .*ckpt-4'):
    watch.resolve_checkpoint(str(tmp_path / 'ckpt-4'), 'checkpoint_path')
  empty = tmp_path / 'empty'
  empty.mkdir()
  with pytest.raises(FileNotFoundError, match=r'--checkpoint_dir: .*empty holds no checkpoint'):
    watch.resolve_checkpoint(str(empty), 'checkpoint_dir')


def test_single_shot_without_checkpoint_is_an_immediate_error(tmp_path):
  fake = FakeTime()
  with pytest.raises(FileNotFoundError, match='holds no checkpoint'):
    watch.run_on_checkpoints(lambda p, flag: p, str(tmp_path), max_count=1)
  with pytest.raises(FileNotFoundError, match='does not exist'):
    watch.run_on_checkpoints(lambda p, flag: p, str(tmp_path / 'nope'), max_count=1)
  assert not fake.sleeps


def test_watching_waits_polls_and_respects_the_interval(tmp_path):
  fake = FakeTime()
  log = tmp_path / 'log'
  seen = []
  # No checkpoint yet: the iterator polls; a trainer writes one at t=5.
  original_sleep = fake.sleep

  def sleep_and_train(seconds):
    original_sleep(seconds)
    if fake.now == 5:
      _training_checkpoint(log, 100)
    if fake.now == 400:
      _training_checkpoint(log, 200)
      _training_checkpoint(log, 300)  # Two new ones: only the latest is evaluated.
  fake.sleep = sleep_and_train
  iterator = watch.checkpoints(str(log), interval_secs=300, max_count=3, poll_secs=1,
                               clock=fake.clock, sleep=fake.sleep)
  seen.append(next(iterator))
  assert seen[-1].endswith('ckpt-100') and fake.now == 5
  fake.now += 10  # The evaluation took 10 s.
  seen.append(next(iterator))
  # It slept until 300 s after the first evaluation started, then polled until t=400.
  assert seen[-1].endswith('ckpt-300') and fake.now == 400
  assert 290 in fake.sleeps


def test_timeout_ends_watching_and_nothing_evaluated_is_an_error(tmp_path):
  fake = FakeTime()
  log = tmp_path / 'log'
  _training_checkpoint(log, 1)
  paths = list(watch.checkpoints(str(log), interval_secs=0, max_count=0, timeout_secs=30,
                                 clock=fake.clock, sleep=fake.sleep))
  assert [os.path.basename(p) for p in paths] == ['ckpt-1'] and fake.now == 30

  def fn(path, flag):
    return path
  with pytest.raises(FileNotFoundError, match=r'other does not exist.*waited 0\.01 s'):
    watch.run_on_checkpoints(fn, str(tmp_path / 'other'), max_count=0, timeout_secs=0.01,
                             poll_secs=0.005)


def test_run_on_checkpoints_follows_training_and_skips_deleted(tmp_path):
  log = tmp_path / 'log'
  _training_checkpoint(log, 1, max_to_keep=1)
  calls = []

  def evaluate(path, flag):
    assert flag == 'checkpoint_dir'
    calls.append(os.path.basename(path))
    if len(calls) == 1:
      _training_checkpoint(log, 2, max_to_keep=1)  # Training goes on meanwhile.
    return {'checkpoint': path}
  results = watch.run_on_checkpoints(evaluate, str(log), interval_secs=0, max_count=2,
                                     poll_secs=0.01)
  assert calls == ['ckpt-1', 'ckpt-2'] and len(results) == 2

  def vanished(path, flag):
    if not calls or calls[-1] != 'gone':
      calls.append('gone')
      for suffix in ('.index', '.data-00000-of-00001'):
        os.remove(path + suffix)
      _training_checkpoint(log, 3, max_to_keep=1)
      raise FileNotFoundError(path)
    return {'checkpoint': path}
  results = watch.run_on_checkpoints(vanished, str(log), interval_secs=0, max_count=2,
                                     poll_secs=0.01)
  assert [os.path.basename(r['checkpoint']) for r in results] == ['ckpt-3']


def test_missing_checkpoint_dir_is_an_error_with_a_count_and_a_warning_when_watching(
    tmp_path, caplog):
  missing = str(tmp_path / 'typo')
  with pytest.raises(FileNotFoundError, match=f'--checkpoint_dir: {missing} does not exist'):
    watch.run_on_checkpoints(lambda p, flag: p, missing, max_count=3)
  with caplog.at_level('WARNING'):
    with pytest.raises(FileNotFoundError, match='does not exist'):
      watch.run_on_checkpoints(lambda p, flag: p, missing, max_count=0, timeout_secs=0.01,
                               poll_secs=0.005)
  assert any(f'--checkpoint_dir={missing} does not exist (yet): waiting' in r.getMessage()
             for r in caplog.records)
  (tmp_path / 'file').write_text('x')
  with pytest.raises(ValueError, match='--checkpoint_dir=.*file is a file, not a folder'):
    watch.check_checkpoint_dir(str(tmp_path / 'file'))
