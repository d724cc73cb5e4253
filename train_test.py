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
from deeplab_dpc.data import image_io
from deeplab_dpc.data import shard_writer
from deeplab_dpc.data import tfrecord
from deeplab_dpc.testing import cli_runner

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


_MISTAKES = [
    (['--train_crop_size=64,64'], '--train_crop_size=64,64 does not suit --output_stride=16'),
    (['--train_crop_size=64'], '--train_crop_size must be two positive integers'),
    (['--dataset=nope'], '--dataset'),
    (['--train_split=test'], "Unknown split 'test'"),
    (['--tf_initial_checkpoint=/nonexistent/ckpt'], 'no checkpoint at /nonexistent/ckpt'),
    (['--distribution=multi_worker'], 'TF_CONFIG'),
    (['--base_learning_rate=nan'], '--base_learning_rate must be a finite number, got nan'),
    (['--label_weights=1,2'], '--label_weights has 2 values but --dataset=demo has 6 classes'),
]


@pytest.fixture(scope='module')
def mistake_runs(demo_dir, tmp_path_factory):
  """train.py on each of `_MISTAKES`, one forked run each (`cli_runner`)."""
  out = tmp_path_factory.mktemp('mistakes')
  argvs = []
  for index, (flags, _) in enumerate(_MISTAKES):
    names = {f.split('=')[0] for f in flags}
    small = [f for f in _SMALL if f.split('=')[0] not in names]
    argvs.append(_command(demo_dir, out / str(index), 1, *small, *flags)[2:])
  env = {k: v for k, v in _ENV.items() if k != 'TF_CONFIG'}
  return cli_runner.run_many('deeplab_dpc.tools.train', argvs, cwd=ROOT, env=env)


@pytest.mark.parametrize('index', range(len(_MISTAKES)),
                         ids=[message for _, message in _MISTAKES])
def test_user_mistakes_exit_2(index, mistake_runs):
  message, result = _MISTAKES[index][1], mistake_runs[index]
  assert result.returncode == 2, result.stderr[-2000:]
  assert message in result.stderr
  assert 'Traceback' not in result.stderr


def _copy_with_a_damaged_shard(demo_dir, target, damage):
  os.makedirs(target)
  names = sorted(n for n in os.listdir(demo_dir) if n.startswith('train-'))
  for name in names:
    with open(os.path.join(demo_dir, name), 'rb') as f:
      data = f.read()
    if name == names[-1]:
      data = damage(data)
    with open(os.path.join(target, name), 'wb') as f:
      f.write(data)
  return os.path.join(target, names[-1])


@pytest.mark.parametrize('damage, message', [
    (lambda data: data[:len(data) // 2], ': truncated TFRecord file: record '),
    # A flipped byte inside a record: found when it is read, then named.
    (lambda data: data[:5000] + bytes([data[5000] ^ 0xFF]) + data[5001:],
     ' record 0: truncated or corrupt TFRecord file (corrupted record at 12)'),
])
def test_damaged_shard_is_a_one_line_error_naming_it(demo_dir, tmp_path, damage, message):
  shard = _copy_with_a_damaged_shard(demo_dir, str(tmp_path / 'data'), damage)
  result = _run(_command(str(tmp_path / 'data'), tmp_path / 'log', 200, *_SMALL))
  assert result.returncode == 2, result.stderr[-3000:]
  assert 'Traceback' not in result.stderr
  assert result.stderr.strip().splitlines()[-1].startswith(f'error: {shard}{message}')


def test_label_outside_the_classes_is_a_one_line_error_naming_the_record(tmp_path):
  def to_example(label_value):
    return tfrecord.encode_example(
        image_io.encode_png(np.zeros((40, 40, 3), np.uint8)),
        image_io.encode_png(np.full((40, 40), label_value, np.uint8)), f'l{label_value}', 40, 40)

  data_dir = str(tmp_path / 'data')
  shard = shard_writer.write_split(data_dir, 'train', [9, 9], to_example, 1)[0]
  result = _run(_command(data_dir, tmp_path / 'log', 5, *_SMALL))
  assert result.returncode == 2, result.stderr[-3000:]
  assert 'Traceback' not in result.stderr
  assert result.stderr.strip().splitlines()[-1].startswith(
      f'error: TFRecord {shard} record ')
  assert 'has label values outside [0, 6)' in result.stderr
