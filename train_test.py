"""train.py: the command-line contract, resuming after SIGKILL, and user mistakes."""

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow as tf

from deeplab_dpc.data import demo

ROOT = os.path.dirname(os.path.abspath(__file__))


@pytest.fixture(scope='module')
def demo_dir(tmp_path_factory):
  directory = str(tmp_path_factory.mktemp('demo'))
  demo.build(directory, splits=('train',))
  return directory


def _command(demo_dir, logdir, steps, *extra):
  return [sys.executable, os.path.join(ROOT, 'train.py'), '--dataset=demo',
          f'--dataset_dir={demo_dir}', f'--train_logdir={logdir}', *extra,
          f'--training_number_of_steps={steps}']


_SMALL = ['--model_variant=mobilenet_v2', '--depth_multiplier=0.5', '--output_stride=16',
          '--train_crop_size=33,33', '--train_batch_size=2', '--base_learning_rate=0.01',
          '--seed=5', '--deterministic', '--learning_policy=step',
          '--learning_rate_decay_step=1000']
_ENV = {**os.environ, 'TF_CPP_MIN_LOG_LEVEL': '2'}


def _run(args):
  return subprocess.run(args, capture_output=True, text=True, env=_ENV, check=False, cwd=ROOT)


def test_contract_trains_then_resumes(demo_dir, tmp_path):
  logdir = str(tmp_path / 'log')
  contract = ['--model_variant=xception_41', '--output_stride=16', '--train_crop_size=65,65',
              '--train_batch_size=2', '--base_learning_rate=0.01']
  first = _run(_command(demo_dir, logdir, 2, *contract))
  assert first.returncode == 0, first.stderr[-3000:]
  assert 'starts from random weights' in first.stderr
  assert tf.train.latest_checkpoint(logdir).endswith('-2')
  second = _run(_command(demo_dir, logdir, 3, *contract))
  assert second.returncode == 0, second.stderr[-3000:]
  assert 'Resuming from' in second.stderr and 'ckpt-2' in second.stderr
  assert tf.train.latest_checkpoint(logdir).endswith('-3')


def _checkpoint_values(path):
  reader = tf.train.load_checkpoint(path)
  return {n: reader.get_tensor(n) for n in reader.get_variable_to_shape_map()
          if n.startswith(('model/', 'optimizer/', 'global_step', 'random_state/'))}


def test_sigkill_then_restart_equals_an_uninterrupted_run(demo_dir, tmp_path):
  steps = 8
  straight = _run(_command(demo_dir, tmp_path / 'straight', steps, *_SMALL))
  assert straight.returncode == 0, straight.stderr[-3000:]

  killed_dir = tmp_path / 'killed'
  process = subprocess.Popen(_command(demo_dir, killed_dir, steps, *_SMALL,
                                      '--save_interval_steps=3'),
                             env=_ENV, cwd=ROOT, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL, start_new_session=True)
  deadline = time.time() + 300
  while not os.path.exists(killed_dir / 'ckpt-3.index') and time.time() < deadline:
    assert process.poll() is None, 'train.py ended before it could be killed'
    time.sleep(0.05)
  os.killpg(process.pid, signal.SIGKILL)
  process.wait()
  latest = tf.train.latest_checkpoint(str(killed_dir))
  assert latest and int(latest.rsplit('-', 1)[1]) < steps

  restarted = _run(_command(demo_dir, killed_dir, steps, *_SMALL, '--save_interval_steps=3'))
  assert restarted.returncode == 0, restarted.stderr[-3000:]
  assert 'Input position restored' in restarted.stderr
  expected = _checkpoint_values(str(tmp_path / 'straight' / f'ckpt-{steps}'))
  actual = _checkpoint_values(str(killed_dir / f'ckpt-{steps}'))
  assert expected.keys() == actual.keys()
  for name, value in expected.items():
    np.testing.assert_array_equal(actual[name], value, err_msg=name)


@pytest.mark.parametrize('flags, message', [
    (['--train_crop_size=64,64'], '--train_crop_size=64,64 does not suit --output_stride=16'),
    (['--train_crop_size=64'], '--train_crop_size must be two positive integers'),
    (['--dataset=nope'], '--dataset'),
    (['--train_split=test'], "Unknown split 'test'"),
    (['--tf_initial_checkpoint=/nonexistent/ckpt'], 'no checkpoint at /nonexistent/ckpt'),
    (['--distribution=multi_worker'], 'TF_CONFIG'),
])
def test_user_mistakes_exit_2(flags, message, demo_dir, tmp_path):
  names = {f.split('=')[0] for f in flags}
  small = [f for f in _SMALL if f.split('=')[0] not in names]
  result = _run(_command(demo_dir, tmp_path / 'log', 1, *small, *flags))
  assert result.returncode == 2, result.stderr[-2000:]
  assert message in result.stderr
  assert 'Traceback' not in result.stderr
