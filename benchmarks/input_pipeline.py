"""Training input pipeline throughput at 513x513 crops vs the model's CPU training step rate.

The pipeline must never be the bottleneck (target: at least 4x the step rate). It reads
Cityscapes-sized records (1024x2048 PNG images and labels, written here) with the full
training augmentation; the model step is xception_65 + the released DPC + decoder at the
same crop and batch, timed in the same run.

  python benchmarks/input_pipeline.py [--num_images=24] [--batch_size=1]
"""

import os
import tempfile
import time

from absl import app
from absl import flags
import keras
import numpy as np
import tensorflow as tf

from deeplab_dpc import cell
from deeplab_dpc import model as model_lib
from deeplab_dpc import options as options_lib
from deeplab_dpc.data import image_io
from deeplab_dpc.data import pipeline
from deeplab_dpc.data import shard_writer
from deeplab_dpc.data import tfrecord
from deeplab_dpc.testing import timing
from deeplab_dpc.training import losses

FLAGS = flags.FLAGS
flags.DEFINE_integer('num_images', 24, 'Synthetic 1024x2048 images to write.')
flags.DEFINE_integer('batch_size', 1, 'Batch size of both measurements.')
flags.DEFINE_integer('crop_size', 513, 'Square training crop.')
flags.DEFINE_integer('pipeline_batches', 60, 'Batches timed from the pipeline.')
flags.DEFINE_integer('model_steps', 3, 'Training steps timed (median).')


def _write_records(directory, count):
  """Street-scene-sized records: smooth colour fields with noise, 19-class labels."""
  rng = np.random.default_rng(0)
  height, width = 1024, 2048
  y, x = np.mgrid[0:height, 0:width]

  def example(index):
    phase = rng.uniform(0, 6.28, 3)
    image = np.stack([127 + 100 * np.sin(x / (90 + 20 * c) + y / 70 + phase[c])
                      for c in range(3)], -1)
    image = np.clip(image + rng.normal(0, 8, image.shape), 0, 255).astype(np.uint8)
    label = ((x // 128 + y // 128 + index) % 19).astype(np.uint8)
    return tfrecord.encode_example(image_io.encode_png(image), image_io.encode_png(label), f'image_{index:03d}', height,
                                   width)

  shard_writer.write_split(directory, 'train_fine', list(range(count)), example, 4)


def _pipeline_rate(directory):
  dataset = pipeline.build_dataset('cityscapes', directory, 'train_fine',
                                   crop_size=FLAGS.crop_size, batch_size=FLAGS.batch_size,
                                   is_training=True)
  iterator = iter(dataset)
  for _ in range(5):
    next(iterator)  # Fill the prefetch and shuffle buffers.
  start = time.perf_counter()
  for _ in range(FLAGS.pipeline_batches):
    next(iterator)
  return FLAGS.pipeline_batches * FLAGS.batch_size / (time.perf_counter() - start)


def _model_rate():
  options = options_lib.ModelOptions.create(
      num_classes=19, model_variant='xception_65', crop_size=(FLAGS.crop_size,) * 2,
      output_stride=16, decoder_output_stride=(4,),
      dense_prediction_cell_json=cell.RELEASED_CELL_PATH)
  model = model_lib.build_model(options)
  optimizer = keras.optimizers.SGD(0.001, momentum=0.9)
  rng = np.random.default_rng(0)
  images = tf.constant(rng.uniform(0, 255, (FLAGS.batch_size, FLAGS.crop_size,
                                            FLAGS.crop_size, 3)).astype(np.float32))
  labels = tf.constant(rng.integers(0, 19, (FLAGS.batch_size, FLAGS.crop_size,
                                            FLAGS.crop_size, 1)).astype(np.int32))

  @tf.function
  def step():
    with tf.GradientTape() as tape:
      loss = losses.softmax_cross_entropy(model(images, training=True), labels, 19)
    grads = tape.gradient(loss, model.trainable_variables)
    optimizer.apply_gradients(zip(grads, model.trainable_variables))
    return loss

  seconds = timing.median_seconds(lambda: step().numpy(), FLAGS.model_steps)
  return FLAGS.batch_size / seconds


def main(argv):
  del argv
  with tempfile.TemporaryDirectory() as directory:
    start = time.perf_counter()
    _write_records(directory, FLAGS.num_images)
    print(f'wrote {FLAGS.num_images} 1024x2048 records in {time.perf_counter() - start:.0f} s',
          flush=True)
    pipeline_rate = _pipeline_rate(directory)
  model_rate = _model_rate()
  print(f'training input at {FLAGS.crop_size}x{FLAGS.crop_size}, batch {FLAGS.batch_size}, '
        f'{os.cpu_count()} cores')
  print(f'{"measurement":<44} {"images/s":>9}')
  print(f'{"input pipeline (decode + augment + crop)":<44} {pipeline_rate:>9.2f}')
  print(f'{"xception_65 + DPC + decoder training step":<44} {model_rate:>9.2f}')
  print(f'{"pipeline / step rate (target >= 4)":<44} {pipeline_rate / model_rate:>9.1f}')


if __name__ == '__main__':
  app.run(main)
