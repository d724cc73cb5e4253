"""Forward latency of xception_65 + the released DPC cell + decoder, OS16, 513x513, batch 1.

Prints, from one run (machines are noisy, so everything is measured side by side):
the median latency with a plain tf.function and with XLA (`jit_compile=True`), the
model's multiply-adds and achieved MAdds/s, and the MAdds/s of a 2048x2048 fp32
matmul timed in the same run (the machine's practical fp32 rate).

  python benchmarks/model_latency.py [--crop_size=513] [--repeats=10] [--xla]
"""

from absl import app
from absl import flags
import numpy as np
import tensorflow as tf

from deeplab_dpc.testing import timing
from deeplab_dpc import cell
from deeplab_dpc import model as model_lib
from deeplab_dpc import model_stats
from deeplab_dpc import options as options_lib

FLAGS = flags.FLAGS
flags.DEFINE_integer('crop_size', 513, 'Square input size.')
flags.DEFINE_integer('repeats', 10, 'Timed runs per configuration (after one warm-up).')
flags.DEFINE_boolean('xla', True, 'Also time jit_compile=True.')


def _matmul_rate(repeats):
  a = tf.random.normal([2048, 2048])
  b = tf.random.normal([2048, 2048])
  matmul = tf.function(lambda: tf.matmul(a, b))
  seconds = timing.median_seconds(lambda: matmul().numpy(), repeats)
  return 2048 ** 3 / seconds


def main(argv):
  del argv
  options = options_lib.ModelOptions.create(
      num_classes=19, model_variant='xception_65', crop_size=(FLAGS.crop_size,) * 2,
      output_stride=16, decoder_output_stride=(4,),
      dense_prediction_cell_json=cell.RELEASED_CELL_PATH)
  model = model_lib.build_model(options)
  madds = model_stats.multiply_adds(model)['total']
  images = tf.constant(np.random.default_rng(0).uniform(
      0, 255, (1, FLAGS.crop_size, FLAGS.crop_size, 3)).astype(np.float32))
  rows = [('fp32 matmul 2048^3', None, _matmul_rate(FLAGS.repeats))]
  plain = tf.function(lambda x: model(x, training=False))
  seconds = timing.median_seconds(lambda: plain(images).numpy(), FLAGS.repeats)
  rows.append(('tf.function', seconds, madds / seconds))
  if FLAGS.xla:
    xla = tf.function(lambda x: model(x, training=False), jit_compile=True)
    seconds = timing.median_seconds(lambda: xla(images).numpy(), FLAGS.repeats)
    rows.append(('tf.function + XLA', seconds, madds / seconds))
  print(f'xception_65 + DPC + decoder, OS16, {FLAGS.crop_size}x{FLAGS.crop_size}, batch 1: '
        f'{madds / 1e9:.1f} G multiply-adds; median of {FLAGS.repeats} runs')
  print(f'{"configuration":<22} {"latency (s)":>12} {"GMAC/s":>8} {"vs matmul":>10}')
  matmul_rate = rows[0][2]
  for name, seconds, rate in rows:
    latency = f'{seconds:.3f}' if seconds is not None else '-'
    print(f'{name:<22} {latency:>12} {rate / 1e9:>8.1f} {rate / matmul_rate:>10.2f}')


if __name__ == '__main__':
  app.run(main)
