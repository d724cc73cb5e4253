"""Real distribution on this machine: 2 logical CPUs (MirroredStrategy, synchronised
batch norm) and 2 worker processes (MultiWorkerMirroredStrategy over localhost)."""

import json
import os
import socket
import subprocess
import sys

import numpy as np
import pytest

from deeplab_dpc.data import demo
from deeplab_dpc.options import ModelOptions


@pytest.fixture(scope='module')
def demo_dir(tmp_path_factory):
  directory = str(tmp_path_factory.mktemp('demo'))
  demo.build(directory, splits=('train',))
  return directory


def _config(demo_dir, logdir, **changes):
  options = ModelOptions.create(num_classes=6, model_variant='mobilenet_v2', crop_size=(33, 33),
                                output_stride=16, depth_multiplier=0.5,
                                fine_tune_batch_norm=True)
  fields = dict(dataset='demo', dataset_dir=demo_dir, train_logdir=logdir,
                model_options=options.to_dict(), train_batch_size=4,
                training_number_of_steps=8, base_learning_rate=0.02, seed=3, log_steps=4,
                save_summaries_steps=0)
  fields.update(changes)
  return fields


def _worker(config, path, env=None, logical_cpus=None):
  with open(path + '.json', 'w', encoding='utf-8') as f:
    json.dump(config, f)
  args = [sys.executable, '-m', 'deeplab_dpc.testing.train_worker', path + '.json', path + '.npz']
  if logical_cpus:
    args.append(str(logical_cpus))
  return subprocess.Popen(args, env={**os.environ, 'TF_CPP_MIN_LOG_LEVEL': '2', **(env or {})},
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _finish(process, timeout=600):
  output, _ = process.communicate(timeout=timeout)
  assert process.returncode == 0, output[-4000:]
  return output


def test_mirrored_on_two_devices_with_synchronised_batch_norm(demo_dir, tmp_path):
  config = _config(demo_dir, str(tmp_path / 'log'), distribution='mirrored',
                   training_number_of_steps=12)
  _finish(_worker(config, str(tmp_path / 'run'), logical_cpus=2))
  arrays = np.load(str(tmp_path / 'run.npz'))
  assert any(k.endswith('@1') for k in arrays.files)  # Two replicas.
  names = sorted({k.split('@')[0] for k in arrays.files if '@' in k})
  for name in names:
    # Every variable, batch-norm statistics included, is the same on both replicas.
    np.testing.assert_array_equal(arrays[f'{name}@0'], arrays[f'{name}@1'], err_msg=name)
  moving_mean = arrays['MobilenetV2/Conv/BatchNorm/moving_mean@0']
  assert np.abs(moving_mean).max() > 0  # Statistics were trained.
  losses = arrays['losses'][:, 1]
  assert losses[-3:].mean() < losses[:3].mean()
  assert os.path.exists(tmp_path / 'log' / 'ckpt-12.index')


def _free_ports(count):
  sockets = [socket.socket() for _ in range(count)]
  for s in sockets:
    s.bind(('localhost', 0))
  ports = [s.getsockname()[1] for s in sockets]
  for s in sockets:
    s.close()
  return ports


def test_two_workers_on_localhost(demo_dir, tmp_path):
  ports = _free_ports(2)
  cluster = {'worker': [f'localhost:{p}' for p in ports]}
  logdir = str(tmp_path / 'log')
  config = _config(demo_dir, logdir, distribution='multi_worker', training_number_of_steps=4)
  processes = [
      _worker(config, str(tmp_path / f'worker{i}'),
              env={'TF_CONFIG': json.dumps({'cluster': cluster,
                                            'task': {'type': 'worker', 'index': i}})})
      for i in range(2)]
  try:
    for p in processes:
      _finish(p)
  finally:
    for p in processes:
      if p.poll() is None:
        p.kill()
  first, second = (np.load(str(tmp_path / f'worker{i}.npz')) for i in range(2))
  for name in first.files:
    if '@' in name:
      np.testing.assert_array_equal(first[name], second[name], err_msg=name)
  # The chief (worker 0) wrote the checkpoint; the other worker left nothing behind.
  assert os.path.exists(os.path.join(logdir, 'ckpt-4.index'))
  assert not os.path.exists(os.path.join(logdir, '.workers', 'worker_1'))
