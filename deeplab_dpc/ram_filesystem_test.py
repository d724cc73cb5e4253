"""Build -> train -> evaluate -> export -> search with every path on a non-local filesystem.

TensorFlow's in-memory `ram://` filesystem stands in for gs:// (both are reached only
through tf.io.gfile): each step is the library call its CLI makes, and nothing may
land on local disk (a path treated as local would create `./ram:/...`).
"""

import dataclasses
import json
import os
import uuid

import numpy as np
import tensorflow as tf

from deeplab_dpc import checkpoints
from deeplab_dpc import model as model_lib
from deeplab_dpc import serving
from deeplab_dpc.data import demo
from deeplab_dpc.data import descriptors
from deeplab_dpc.evaluation import evaluator
from deeplab_dpc.options import ModelOptions
from deeplab_dpc.search import proxy_task
from deeplab_dpc.search import records
from deeplab_dpc.search import study
from deeplab_dpc.search import testing
from deeplab_dpc.training import trainer

CROP = (33, 33)


def _read_lines(path):
  with tf.io.gfile.GFile(path) as f:
    return [line for line in f.read().splitlines() if line]


def test_build_train_evaluate_export_and_search_on_ram_filesystem(tmp_path, monkeypatch):
  monkeypatch.chdir(tmp_path)
  root = f'ram://deeplab-{uuid.uuid4().hex[:8]}'
  data_dir = f'{root}/data'
  written = demo.build(data_dir, splits=('train', 'val'), num_shards=2, max_examples=8)
  assert written == {'train': 8, 'val': 8}
  assert len(tf.io.gfile.glob(f'{data_dir}/train-*.tfrecord')) == 2

  descriptor = descriptors.get_dataset_descriptor('demo')
  options = ModelOptions.create(num_classes=descriptor.num_classes,
                                model_variant='mobilenet_v2', crop_size=CROP,
                                output_stride=16, depth_multiplier=0.25)
  train_logdir = f'{root}/train'
  result = trainer.train(trainer.TrainConfig(
      dataset='demo', dataset_dir=data_dir, train_logdir=train_logdir, model_options=options,
      train_batch_size=2, training_number_of_steps=2, base_learning_rate=0.01, seed=3,
      log_steps=1, save_summaries_steps=1))
  assert result['global_step'] == 2
  assert result['checkpoint'].startswith(train_logdir)
  assert tf.io.gfile.exists(result['checkpoint'] + '.index')
  assert tf.train.latest_checkpoint(train_logdir) == result['checkpoint']
  assert tf.io.gfile.glob(f'{train_logdir}/events.out.tfevents.*')

  eval_logdir = f'{root}/eval'
  # The demo's 129x129 images, whole.
  eval_options = dataclasses.replace(options, crop_size=(129, 129))
  runner = evaluator.Evaluator(
      eval_options, evaluator.EvalConfig(dataset='demo', dataset_dir=data_dir, split='val'),
      eval_logdir, show_progress=False)
  try:
    metrics = runner.evaluate_checkpoint(train_logdir, flag='checkpoint_dir')
  finally:
    runner.close()
  assert metrics['global_step'] == 2 and metrics['num_images'] == 8
  with tf.io.gfile.GFile(f'{eval_logdir}/metrics.json') as f:
    assert json.load(f)['miou'] == metrics['miou']

  model = model_lib.build_model(options)
  checkpoints.load_checkpoint(model, result['checkpoint'], flag='checkpoint_path')
  export_path = serving.export_saved_model(model, f'{root}/export', dataset=descriptor)
  assert export_path == f'{root}/export'
  assert serving.is_saved_model_export(export_path)
  image = np.zeros((1, *CROP, 3), np.uint8)
  outputs = tf.saved_model.load(export_path).signatures['serving_default'](
      tf.constant(image))
  assert tuple(outputs['semantic_predictions'].shape) == (1, *CROP)
  # A second export replaces the first in place.
  serving.export_saved_model(model, export_path, dataset=descriptor)
  assert serving.is_saved_model_export(export_path)

  search_dir = f'{root}/search'
  summary = study.run_search(study.SearchConfig(
      search_dir=search_dir, cache=testing.tiny_cache_config(data_dir),
      proxy=proxy_task.ProxyConfig(training_number_of_steps=2, batch_size=4,
                                   eval_batch_size=4),
      num_branches=2, max_trials=2, seed=1))
  trials = [json.loads(line) for line in _read_lines(f'{search_dir}/trials.jsonl')]
  assert [t['status'] for t in trials] == ['COMPLETED', 'COMPLETED']
  assert summary['completed'] == 2
  assert tf.io.gfile.glob(f'{search_dir}/feature_cache/*.tfrecord')
  assert tf.io.gfile.glob(f'{search_dir}/{records.BEST_CELLS_DIR}/rank_01_*.json')
  assert tf.io.gfile.exists(f'{search_dir}/{records.BEST_CELLS_DIR}/pareto.json')
  # Resuming the finished study on ram:// runs nothing again.
  study.run_search(study.SearchConfig(
      search_dir=search_dir, cache=testing.tiny_cache_config(data_dir),
      proxy=proxy_task.ProxyConfig(training_number_of_steps=2, batch_size=4,
                                   eval_batch_size=4),
      num_branches=2, max_trials=2, seed=1))
  assert len(_read_lines(f'{search_dir}/trials.jsonl')) == 2

  assert os.listdir(tmp_path) == []
  tf.io.gfile.rmtree(root)
