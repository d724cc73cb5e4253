r"""Converts Cityscapes to TFRecords with train-id labels (see docs/datasets.md).

  python datasets/build_cityscapes_data.py --cityscapes_root=cityscapes \
    --output_dir=cityscapes/tfrecord [--splits=train_fine,val_fine]
"""

from absl import flags

from deeplab_dpc import cli
from deeplab_dpc.data import cli as data_cli
from deeplab_dpc.data import cityscapes

FLAGS = flags.FLAGS
flags.DEFINE_string('cityscapes_root', './cityscapes',
                    'Cityscapes root folder holding leftImg8bit/ and gtFine/ (and gtCoarse/).')
flags.DEFINE_string('output_dir', './tfrecord', 'Folder to write the TFRecord shards to.')
flags.DEFINE_string('splits', ','.join(cityscapes.DEFAULT_SPLITS),
                    'Comma-separated splits: train_fine, val_fine, test_fine, trainval_fine, '
                    'train_coarse, trainval_coarse (train/val/test/trainval are aliases).')
flags.DEFINE_integer('num_shards', cityscapes.DEFAULT_NUM_SHARDS, 'Shards per split.')


def main(unused_argv):
  written = cityscapes.build(FLAGS.cityscapes_root, FLAGS.output_dir,
                             data_cli.split_list(FLAGS.splits), FLAGS.num_shards)
  data_cli.print_written(written, FLAGS.output_dir)


def run():
  """`deeplab-build-data cityscapes` (and `python datasets/build_cityscapes_data.py`)."""
  cli.run(main, __name__)


if __name__ == '__main__':
  run()
