"""Segments images with an exported SavedModel and writes coloured predictions.

Example:
  python segment.py --saved_model=/tmp/deeplab --image=street.png --output_dir=/tmp/out
"""

from absl import flags

from deeplab_dpc import cli
from deeplab_dpc import segment
from deeplab_dpc.data import colormaps

FLAGS = flags.FLAGS
flags.DEFINE_string('saved_model', None, 'SavedModel directory written by export.py.')
flags.DEFINE_multi_string('image', None, 'Image file(s) to segment.')
flags.DEFINE_string('output_dir', None, 'Directory for the predictions.')
flags.DEFINE_enum('colormap', segment.DEFAULT_COLORMAP, list(colormaps.COLORMAP_NAMES),
                  'Colormap of the coloured predictions. Unset: the colours of the '
                  'export\'s dataset (export.py --dataset or a custom --dataset_dir), '
                  'else of the built-in dataset with its class count, else pascal.')


def main(argv):
  del argv
  for name in ('saved_model', 'image', 'output_dir'):
    if not getattr(FLAGS, name):
      raise ValueError(f'--{name} is required')
  for path in segment.segment_images(FLAGS.saved_model, FLAGS.image, FLAGS.output_dir,
                                     FLAGS.colormap if FLAGS['colormap'].present else None):
    print(f'wrote {path}')


def run():
  """`deeplab-segment` (and `python segment.py`)."""
  cli.run(main, __name__)


if __name__ == '__main__':
  run()
