"""The README's main command: the whole mission end to end on the synthetic demo set.

Builds the demo TFRecords, caches the features of the shipped pretrained backbone,
searches dense prediction cells, re-ranks the best, trains the winner (over several
training seeds) and uniformly random cells with the same recipe, evaluates them all,
exports the winner as a SavedModel and segments a demo image
(`deeplab_dpc/demo_pipeline.py`). `--reduced` is the CI size. Running it again with
the same --output_dir reuses the finished stages.

  python demo.py --output_dir=runs/demo
"""

from absl import flags
from absl import logging

from deeplab_dpc import cli

FLAGS = flags.FLAGS

flags.DEFINE_string('output_dir', 'runs/demo', 'Where every artefact goes.')
flags.DEFINE_boolean('reduced', False, 'Tiny stages (CI): checks the plumbing, not the result.')
flags.DEFINE_integer('seed', 0, 'Seed of training, the search and the random cells.')
flags.DEFINE_string('backbone_checkpoint', '', 'Pretrained MobileNet-v2 x0.5 backbone that '
                    'initialises the cache and every model; default: the shipped one '
                    '(deeplab_dpc/pretrained/demo_backbone, see pretrain_demo_backbone.py).')


def main(argv):
  if len(argv) > 1:
    raise ValueError(f'unexpected arguments: {" ".join(argv[1:])}')
  # Every stage reports its progress through absl at INFO, which absl hides by default.
  if not FLAGS['verbosity'].present:
    logging.set_verbosity(logging.INFO)
  # Here, not at the top: the pipeline loads TensorFlow, which --help does not need.
  from deeplab_dpc import demo_pipeline  # pylint: disable=g-import-not-at-top
  demo_pipeline.run(demo_pipeline.DemoConfig.create(
      FLAGS.output_dir, reduced=FLAGS.reduced, seed=FLAGS.seed,
      backbone_checkpoint=FLAGS.backbone_checkpoint))


def run():
  """`deeplab-demo` (and `python demo.py`)."""
  cli.run(main, __name__)


if __name__ == '__main__':
  run()
