r"""Converts PASCAL-Person-Part to TFRecords (layout in docs/datasets.md).

  python datasets/build_person_part_data.py --person_part_root=pascal_person_part \
    --output_dir=pascal_person_part/tfrecord
"""

from absl import flags

from deeplab_dpc import cli
from deeplab_dpc.data import cli as data_cli
from deeplab_dpc.data import person_part

FLAGS = flags.FLAGS
flags.DEFINE_string('person_part_root', './pascal_person_part',
                    'Folder holding JPEGImages/ and SegmentationPart/.')
flags.DEFINE_string('list_folder', None,
                    'Folder of train_id.txt/val_id.txt (or train.txt/val.txt) lists (default '
                    '<root>/pascal_person_part_trainval_list, else <root>).')
flags.DEFINE_string('splits', ','.join(person_part.DEFAULT_SPLITS), 'Comma-separated splits.')
flags.DEFINE_string('output_dir', './tfrecord', 'Folder to write the TFRecord shards to.')
flags.DEFINE_integer('num_shards', person_part.DEFAULT_NUM_SHARDS, 'Shards per split.')


def main(unused_argv):
  written = person_part.build(FLAGS.person_part_root, FLAGS.output_dir,
                              data_cli.split_list(FLAGS.splits), FLAGS.list_folder,
                              FLAGS.num_shards)
  data_cli.print_written(written, FLAGS.output_dir)


def run():
  """`deeplab-build-data person_part` (and `python datasets/build_person_part_data.py`)."""
  cli.run(main, __name__)


if __name__ == '__main__':
  run()
