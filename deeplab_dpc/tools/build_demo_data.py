r"""Builds the synthetic demo dataset as TFRecords (see deeplab_dpc/data/demo.py).

  python datasets/build_demo_data.py --output_dir=DIR

writes DIR/train-0000?-of-00004.tfrecord (320 images) and
DIR/val-0000?-of-00004.tfrecord (80 images); the same bytes on every run.
"""

from absl import flags

from deeplab_dpc import cli
from deeplab_dpc.data import cli as data_cli
from deeplab_dpc.data import demo

FLAGS = flags.FLAGS
flags.DEFINE_string('output_dir', './tfrecord', 'Folder to write the TFRecord shards to.')
flags.DEFINE_string('splits', ','.join(demo.SPLITS), 'Comma-separated splits to build.')
flags.DEFINE_integer('num_shards', demo.DEFAULT_NUM_SHARDS, 'Shards per split.')


def main(unused_argv):
  written = demo.build(FLAGS.output_dir, data_cli.split_list(FLAGS.splits), FLAGS.num_shards)
  data_cli.print_written(written, FLAGS.output_dir)


def run():
  """`deeplab-build-data demo` (and `python datasets/build_demo_data.py`)."""
  cli.run(main, __name__)


if __name__ == '__main__':
  run()
