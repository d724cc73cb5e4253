"""Inference latency of xception_65 + the released DPC cell + decoder vs the original's graph.

Times, side by side in one run (rounds interleave the configurations, so a
noisy machine slows them alike), with the same recipe weights on both sides:

* ours: `tf.function` over the Keras model (weights in variables), the frozen
  function `export.py` writes into a SavedModel, and XLA (`jit_compile=True`);
* the original's TF1 graph (`tf1_reference`: the ops tf-slim emits, unfolded
  `FusedBatchNormV3`, restored from an original-format checkpoint) in a
  `tf.compat.v1.Session`, with variables (as the original's `eval.py` runs it)
  and frozen (as the original's `export_model.py` writes it);
* a 2048x2048 fp32 matmul: the machine's practical fp32 rate.

Each path computes the predictions (logits upsampled to 513x513, argmax); the
script checks that ours and the original's logits agree before timing.

  python benchmarks/model_latency.py [--crop_size=513] [--rounds=5] [--repeats=3] [--noxla]
"""

import collections
import os
import statistics
import sys
import tempfile

from absl import app
from absl import flags
import numpy as np
import tensorflow as tf

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # Run as a script.
import tf1_reference  # pylint: disable=g-import-not-at-top,wrong-import-position

from deeplab_dpc import checkpoints  # pylint: disable=wrong-import-position
from deeplab_dpc import model as model_lib  # pylint: disable=wrong-import-position
from deeplab_dpc import model_stats  # pylint: disable=wrong-import-position
from deeplab_dpc import serving  # pylint: disable=wrong-import-position
from deeplab_dpc.testing import golden  # pylint: disable=wrong-import-position
from deeplab_dpc.testing import timing  # pylint: disable=wrong-import-position

FLAGS = flags.FLAGS
flags.DEFINE_integer('crop_size', 513, 'Square input size.')
flags.DEFINE_integer('rounds', 5, 'Rounds; each times every configuration.')
flags.DEFINE_integer('repeats', 3, 'Timed runs per configuration and round.')
flags.DEFINE_boolean('xla', True, 'Also time ours with jit_compile=True (slow on CPU).')

CASE = 'xception65_dpc_os16'  # Its manifest names every variable of this model.


def _original_config(crop_size):
  config = dict(golden.config(CASE)['model_options'])
  config['crop_size'] = [crop_size, crop_size]
  return config


def _ours(config, checkpoint, crop_size):
  """{name: callable(images)} for our model, loaded from the original checkpoint."""
  model = model_lib.build_model(golden.options_from_original(config))
  checkpoints.load_tf1_checkpoint(model, checkpoint)
  spec = tf.TensorSpec([1, crop_size, crop_size, 3], tf.float32)

  @tf.function(input_signature=[spec])
  def predict(images):
    outputs = model_lib.predict(model, images)
    return {'logits': outputs['logits'], 'predictions': outputs['semantic_predictions']}

  frozen = serving.freeze(predict)
  runs = {'ours: tf.function': predict, 'ours: frozen (SavedModel)': frozen}
  if FLAGS.xla:
    runs['ours: tf.function + XLA'] = tf.function(
        lambda x: model_lib.predict(model, x)['semantic_predictions'], jit_compile=True)
  return model, runs


def _original(config, checkpoint):
  """{name: callable(images)} for the original's graph, with variables and frozen."""
  graph, images, outputs, saver = tf1_reference.build_inference_graph(config, batch=1)
  session = tf.compat.v1.Session(graph=graph)
  tf1_reference.restore(session, saver, checkpoint)
  fetches = [outputs['logits_upsampled'], outputs['predictions']]
  runs = {'original: TF1 graph': session.make_callable(fetches, feed_list=[images])}
  graph_def = tf.compat.v1.graph_util.convert_variables_to_constants(
      session, graph.as_graph_def(), [t.op.name for t in fetches])
  frozen_graph = tf.Graph()
  with frozen_graph.as_default():
    tf.import_graph_def(graph_def, name='')
  frozen_session = tf.compat.v1.Session(graph=frozen_graph)
  runs['original: frozen graph'] = frozen_session.make_callable(
      [frozen_graph.get_tensor_by_name(t.name) for t in fetches],
      feed_list=[frozen_graph.get_tensor_by_name(images.name)])
  return runs


def main(argv):
  del argv
  crop = FLAGS.crop_size
  config = _original_config(crop)
  with tempfile.TemporaryDirectory() as tmp:
    checkpoint = golden.write_checkpoint(CASE, tmp)
    model, ours = _ours(config, checkpoint, crop)
    original = _original(config, checkpoint)
  madds = model_stats.multiply_adds(model)['total']
  images = np.random.default_rng(0).uniform(0, 255, (1, crop, crop, 3)).astype(np.float32)

  ours_logits = ours['ours: tf.function'](tf.constant(images))['logits'].numpy()
  original_logits = original['original: TF1 graph'](images)[0]
  difference = np.abs(ours_logits - original_logits).max() / np.abs(original_logits).max()
  if difference > 1e-3:
    raise SystemExit(f'ours and the original disagree: max |diff| / scale = {difference:.2e}')

  a = tf.random.normal([2048, 2048])
  b = tf.random.normal([2048, 2048])
  matmul = tf.function(lambda: tf.matmul(a, b))
  runs = {'fp32 matmul 2048^3': lambda: matmul().numpy()}
  for name, fn in ours.items():
    runs[name] = lambda fn=fn: tf.nest.map_structure(lambda t: t.numpy(), fn(images))
  for name, fn in original.items():
    runs[name] = lambda fn=fn: fn(images)
  for fn in runs.values():  # Tracing, Grappler and oneDNN caches.
    fn()
  samples = collections.defaultdict(list)
  for _ in range(FLAGS.rounds):
    for name, fn in runs.items():
      samples[name].append(timing.median_seconds(fn, FLAGS.repeats, warmup=0))
  seconds = {name: statistics.median(s) for name, s in samples.items()}
  matmul_rate = 2048 ** 3 / seconds.pop('fp32 matmul 2048^3')

  print(f'xception_65 + DPC + decoder, OS16, {crop}x{crop}, batch 1: {madds / 1e9:.1f} G '
        f'multiply-adds; ours vs the original logits: max |diff| / scale {difference:.1e}')
  print(f'median of {FLAGS.rounds} rounds x {FLAGS.repeats} runs; '
        f'fp32 matmul {matmul_rate / 1e9:.1f} GMAC/s')
  reference = seconds['original: TF1 graph']
  print(f'{"configuration":<28} {"latency (s)":>11} {"GMAC/s":>7} {"vs matmul":>9} '
        f'{"speed vs original TF1 graph":>28}')
  for name, s in seconds.items():
    rate = madds / s
    print(f'{name:<28} {s:>11.3f} {rate / 1e9:>7.1f} {rate / matmul_rate:>9.2f} '
          f'{reference / s:>27.2f}x')


if __name__ == '__main__':
  app.run(main)
