"""Pretrains the demo's backbone, the checkpoint that ships in deeplab_dpc/pretrained/.

MobileNet-v2 (x0.5) trained at output stride 8, without a decoder, on the demo
generator's `pretrain` split (4000 scenes disjoint from the demo's train and val
images); its backbone variables initialise the demo's feature cache and every demo
model (`deeplab_dpc/demo_backbone.py`). About 25 minutes on 2 CPU cores:

  python pretrain_demo_backbone.py --output_dir=deeplab_dpc/pretrained/demo_backbone
"""

import tempfile

from absl import flags
from absl import logging

from deeplab_dpc import cli
from deeplab_dpc import demo_backbone

FLAGS = flags.FLAGS
_DEFAULTS = demo_backbone.PretrainConfig()

flags.DEFINE_string('output_dir', None, 'Where backbone.ckpt* and pretraining.json go.')
flags.DEFINE_string('work_dir', '', 'Pretraining data and logdir (resumable); default: a '
                    'temporary folder.')
flags.DEFINE_integer('training_number_of_steps', _DEFAULTS.training_number_of_steps,
                     'Pretraining steps.')
flags.DEFINE_integer('train_crop_size', _DEFAULTS.crop_size, 'Square training crop '
                     '(k * 8 + 1).')
flags.DEFINE_integer('train_batch_size', _DEFAULTS.batch_size, 'Training batch.')
flags.DEFINE_float('base_learning_rate', _DEFAULTS.base_learning_rate, 'Poly learning rate.')
flags.DEFINE_integer('seed', _DEFAULTS.seed, 'Training seed.')


def main(argv):
  if len(argv) > 1:
    raise ValueError(f'unexpected arguments: {" ".join(argv[1:])}')
  if not FLAGS.output_dir:
    raise ValueError('--output_dir is required')
  if not FLAGS['verbosity'].present:
    logging.set_verbosity(logging.INFO)
  config = demo_backbone.PretrainConfig(
      training_number_of_steps=FLAGS.training_number_of_steps, crop_size=FLAGS.train_crop_size,
      batch_size=FLAGS.train_batch_size, base_learning_rate=FLAGS.base_learning_rate,
      seed=FLAGS.seed)
  if FLAGS.work_dir:
    demo_backbone.pretrain(FLAGS.output_dir, FLAGS.work_dir, config)
  else:
    with tempfile.TemporaryDirectory() as work_dir:
      demo_backbone.pretrain(FLAGS.output_dir, work_dir, config)


def run():
  """`deeplab-pretrain-demo-backbone` (and `python pretrain_demo_backbone.py`)."""
  cli.run(main, __name__)


if __name__ == '__main__':
  run()
