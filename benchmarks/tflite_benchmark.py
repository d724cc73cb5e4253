r"""Float SavedModel vs float / dynamic-range / full-integer TFLite: latency and mIOU.

Prints one table from one run (machines are noisy, so everything is measured
side by side): file size, median batch-1 latency, mIOU on a split and the
fraction of pixels whose prediction equals the float SavedModel's.

  python benchmarks/tflite_benchmark.py --checkpoint_path=CKPT \
    --dataset=demo --dataset_dir=DIR --model_variant=mobilenet_v2 \
    --output_stride=16 --crop_size=129,129 \
    --dense_prediction_cell_json=deeplab_dpc/cells/dense_prediction_cell_branch5_top1_cityscapes.json

Without --checkpoint_path the model keeps its random initial weights (a check
that the pipeline works; its mIOU means nothing). The full-integer model is
calibrated on --num_calibration_images images of --calibration_split.
"""

import os
import tempfile
import time

from absl import flags
from absl import logging
import numpy as np
import tensorflow as tf

from deeplab_dpc.testing import timing
from deeplab_dpc import checkpoints
from deeplab_dpc import cli
from deeplab_dpc import fileio
from deeplab_dpc import flags as model_flags
from deeplab_dpc import model as model_lib
from deeplab_dpc import serving
from deeplab_dpc import tflite
from deeplab_dpc.data import descriptors
from deeplab_dpc.data import pipeline
from deeplab_dpc.evaluation import metrics

FLAGS = flags.FLAGS
flags.DEFINE_string('checkpoint_path', None, 'Checkpoint to measure; unset: random weights.')
flags.DEFINE_string('dataset', None, model_flags.dataset_flag_help('demo'))
flags.DEFINE_string('dataset_dir', None, 'TFRecord folder of the dataset.')
flags.DEFINE_string('eval_split', 'val', 'Split the mIOU is measured on.')
flags.DEFINE_string('calibration_split', 'train', 'Split of the full-integer calibration.')
flags.DEFINE_integer('num_calibration_images', 100, 'Calibration images.')
flags.DEFINE_integer('max_eval_images', 0, 'Evaluate at most this many images (0: all).')
flags.DEFINE_multi_string('crop_size', ['129', '129'], 'Model input size [height, width].')
flags.DEFINE_integer('repeats', 30, 'Timed runs per model (after warm-up).')
flags.DEFINE_integer('num_threads', 2, 'TFLite interpreter threads (TF uses all cores).')
flags.DEFINE_string('output_dir', None, 'Keep the SavedModel and .tflite files here.')
model_flags.define_model_flags(model_variant='mobilenet_v2', output_stride=16)


def _size_mb(path):
  if os.path.isdir(path):
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, files in os.walk(path)
               for f in files) / 2 ** 20
  return os.path.getsize(path) / 2 ** 20


def _evaluate(predict, samples, num_classes, ignore_label, reference=None):
  """(mIOU, predictions list, agreement with `reference` predictions or None)."""
  confusion = metrics.StreamingConfusion(num_classes, ignore_label)
  predictions, agree, total = [], 0, 0
  for index, (image, label) in enumerate(samples):
    labels = predict(image)
    predictions.append(labels)
    confusion.update(label, labels)
    if reference is not None:
      agree += int(np.sum(labels == reference[index]))
      total += labels.size
  return confusion.result()['miou'], predictions, (agree / total if total else None)


def _measure(model, samples, descriptor, crop_size, output_dir):
  """[(name, size MB, median ms, mIOU, agreement with the float SavedModel)]."""
  saved_model = serving.export_saved_model(model, os.path.join(output_dir, 'saved_model'))
  serve = tf.saved_model.load(saved_model).signatures['serving_default']
  calibration = tflite.representative_images_from_dataset(
      model_flags.dataset_name(default='demo'), FLAGS.dataset_dir, FLAGS.calibration_split,
      crop_size,
      FLAGS.num_calibration_images)

  def saved_model_predict(image):
    return serve(image=tf.constant(image[None]))['semantic_predictions'][0].numpy()

  timing_image = samples[0][0]
  rows = []
  miou, reference, _ = _evaluate(saved_model_predict, samples, descriptor.num_classes,
                                 descriptor.ignore_label)
  latency = timing.median_seconds(lambda: saved_model_predict(timing_image), FLAGS.repeats,
                                  warmup=3)
  rows.append(('float SavedModel (TF)', _size_mb(saved_model), 1000 * latency, miou, 1.0))
  start = time.perf_counter()
  converted = tflite.convert_all(model, tflite.QUANTIZATIONS, calibration)
  print(f'converted in {time.perf_counter() - start:.1f} s', flush=True)
  for quantization, content in converted.items():
    name = quantization or 'float'
    path = os.path.join(output_dir, f'{name}.tflite')
    fileio.atomic_write(path, content)
    segmenter = tflite.TFLiteSegmenter(path, num_threads=FLAGS.num_threads)
    miou, _, agreement = _evaluate(segmenter, samples, descriptor.num_classes,
                                   descriptor.ignore_label, reference)
    padded = tflite.pad_image(timing_image, crop_size)
    latency = timing.median_seconds(lambda s=segmenter: s.run_padded(padded), FLAGS.repeats,
                                    warmup=3)
    rows.append((f'{name} TFLite', _size_mb(path), 1000 * latency, miou, agreement))
  return rows


def main(argv):
  del argv
  logging.set_verbosity(logging.WARNING)  # Keep the exporters' INFO lines out of the table.
  if not FLAGS.dataset_dir:
    raise ValueError('--dataset_dir is required (build the demo set with '
                     'datasets/build_demo_data.py)')
  dataset_name = model_flags.dataset_name(default='demo')
  descriptor = descriptors.get_dataset_descriptor(dataset_name, FLAGS.dataset_dir)
  crop_size = tuple(model_flags.multi_ints(FLAGS.crop_size, 'crop_size'))
  options = model_flags.model_options_from_flags(descriptor.num_classes, crop_size)
  model = model_lib.build_model(options)
  if FLAGS.checkpoint_path:
    checkpoints.load_checkpoint(model, FLAGS.checkpoint_path, flag='checkpoint_path')
  weights = FLAGS.checkpoint_path or 'random initial weights'

  # Evaluation images: original size (the SavedModel pads them itself) and labels.
  dataset = pipeline.build_dataset(dataset_name, FLAGS.dataset_dir, FLAGS.eval_split,
                                   crop_size=crop_size, batch_size=1, is_training=False,
                                   shuffle=False, seed=0)
  if FLAGS.max_eval_images:
    dataset = dataset.take(FLAGS.max_eval_images)
  samples = []
  for element in dataset:
    height, width = int(element['height'][0]), int(element['width'][0])
    image = element['image'][0, :height, :width].numpy()
    samples.append((image.astype(np.uint8), element['label'][0, :height, :width, 0].numpy()))
  if not samples:
    raise ValueError(f'--dataset_dir: no images in split {FLAGS.eval_split!r}')

  if FLAGS.output_dir:
    rows = _measure(model, samples, descriptor, crop_size, FLAGS.output_dir)
    where = f'files in {FLAGS.output_dir}'
  else:
    with tempfile.TemporaryDirectory(prefix='tflite-benchmark-') as output_dir:
      rows = _measure(model, samples, descriptor, crop_size, output_dir)
    where = 'files not kept (--output_dir keeps them)'

  print(f'\n{options.model_variant}, output stride {options.output_stride}, input '
        f'{crop_size[0]}x{crop_size[1]}, batch 1; weights: {weights}; mIOU on '
        f'{descriptor.name}/{FLAGS.eval_split} ({len(samples)} images); TFLite with '
        f'{FLAGS.num_threads} threads; {where}\n')
  print('| model | size (MB) | median latency (ms) | mIOU | mIOU - float | '
        'pixels = float |')
  print('|---|---|---|---|---|---|')
  float_miou = rows[0][3]
  for name, size, latency, miou, agreement in rows:
    print(f'| {name} | {size:.2f} | {latency:.2f} | {100 * miou:.2f}% | '
          f'{100 * (miou - float_miou):+.2f} | {100 * agreement:.2f}% |')


if __name__ == '__main__':
  cli.run(main)
