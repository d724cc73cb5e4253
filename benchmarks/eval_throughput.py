"""Evaluation throughput, single-scale and multi-scale + flip, and SavedModel latency.

Prints one table from one run (machines are noisy, so everything is measured side
by side): images/s of the whole evaluation loop (input pipeline, model,
confusion matrix; `evaluator.evaluate_dataset`) with one scale and with scales
0.75/1.0/1.25 plus flips, then the batch-1 median latency of the in-process
model against the exported SavedModel signature on the same images.

  python benchmarks/eval_throughput.py [--model_variant=xception_41] [--crop_size=161]
      [--num_images=40] [--dataset_dir=DEMO_TFRECORDS]

Without --dataset_dir the demo val split is built into a temporary folder. The
weights are random: throughput does not depend on them.
"""

import os
import tempfile
import time

from absl import app
from absl import flags
import numpy as np
import tensorflow as tf

from deeplab_dpc.testing import timing
from deeplab_dpc import model as model_lib
from deeplab_dpc import options as options_lib
from deeplab_dpc import serving
from deeplab_dpc.data import demo
from deeplab_dpc.evaluation import evaluator

FLAGS = flags.FLAGS
flags.DEFINE_string('model_variant', 'xception_41', 'Backbone.')
flags.DEFINE_integer('crop_size', 161, 'Square eval crop size (>= 129 for the demo set).')
flags.DEFINE_integer('num_images', 40, 'Images per throughput measurement.')
flags.DEFINE_integer('batch_size', 1, 'Eval batch size for the throughput rows.')
flags.DEFINE_integer('repeats', 20, 'Timed runs per latency row (after one warm-up).')
flags.DEFINE_string('dataset_dir', None, 'Demo TFRecords; default: built into a temp dir.')

_MULTI_SCALES = (0.75, 1.0, 1.25)


def _throughput(model, dataset_dir, scales, flipped):
  config = evaluator.EvalConfig('demo', dataset_dir, 'val', batch_size=FLAGS.batch_size,
                                eval_scales=scales, add_flipped_images=flipped)
  predict = evaluator.prediction_function(model, scales, flipped)
  crop = model.options.crop_size
  predict(tf.zeros([FLAGS.batch_size, crop[0], crop[1], 3]))  # Trace outside the timing.
  batches = -(-FLAGS.num_images // FLAGS.batch_size)
  dataset = evaluator.build_dataset(config, crop).take(batches)
  start = time.perf_counter()
  _, count = evaluator.evaluate_dataset(predict, dataset, model.options.num_classes)
  seconds = time.perf_counter() - start
  return count / seconds, count


def main(argv):
  del argv
  options = options_lib.ModelOptions.create(
      num_classes=6, model_variant=FLAGS.model_variant, crop_size=(FLAGS.crop_size,) * 2,
      output_stride=16)
  model = model_lib.build_model(options)
  with tempfile.TemporaryDirectory() as tmp:
    dataset_dir = FLAGS.dataset_dir
    if not dataset_dir:
      dataset_dir = os.path.join(tmp, 'demo')
      demo.build(dataset_dir, splits=('val',))
    rows = []
    for scales, flipped in (((1.0,), False), (_MULTI_SCALES, True)):
      rate, count = _throughput(model, dataset_dir, scales, flipped)
      name = 'eval ' + ','.join(str(s) for s in scales) + (' + flip' if flipped else '')
      rows.append((name, f'{rate:.2f} images/s', f'{1000 / rate:.1f} ms/image', count))

    image, _ = demo.render('val', 0)
    padded = np.full((1, FLAGS.crop_size, FLAGS.crop_size, 3), 127, np.uint8)
    padded[0, :image.shape[0], :image.shape[1]] = image
    predict = evaluator.prediction_function(model)
    in_process = 1000 * timing.median_seconds(
        lambda: predict(tf.constant(padded, tf.float32)).numpy(), FLAGS.repeats)
    export_dir = serving.export_saved_model(model, os.path.join(tmp, 'saved_model'))
    serve = tf.saved_model.load(export_dir).signatures['serving_default']
    saved = 1000 * timing.median_seconds(
        lambda: serve(image=tf.constant(padded))['semantic_predictions'].numpy(), FLAGS.repeats)
    rows.append(('in-process model, batch 1', '-', f'{in_process:.1f} ms/image', FLAGS.repeats))
    rows.append(('SavedModel signature, batch 1', '-', f'{saved:.1f} ms/image', FLAGS.repeats))

  print(f'{FLAGS.model_variant}, OS16, {FLAGS.crop_size}x{FLAGS.crop_size}, demo val, '
        f'eval batch {FLAGS.batch_size}; {os.cpu_count()} CPUs; latency = median of '
        f'{FLAGS.repeats} runs')
  print(f'{"configuration":<32} {"throughput":>16} {"per image":>14} {"images":>7}')
  for name, rate, per_image, count in rows:
    print(f'{name:<32} {rate:>16} {per_image:>14} {count:>7}')
  print(f'SavedModel / in-process latency: {saved / in_process:.2f}x')


if __name__ == '__main__':
  app.run(main)
