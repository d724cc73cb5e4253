r"""Converts PASCAL VOC 2012 segmentation (and SBD's train_aug) to TFRecords.

  python datasets/build_voc2012_data.py \
    --voc_root=pascal_voc_seg/VOCdevkit/VOC2012 --output_dir=pascal_voc_seg/tfrecord \
    [--train_aug_label_folder=SegmentationClassAug]

The original's --image_folder, --semantic_segmentation_folder and
--list_folder flags override the folders derived from --voc_root.
"""

from absl import flags

from deeplab_dpc import cli
from deeplab_dpc.data import cli as data_cli
from deeplab_dpc.data import voc

FLAGS = flags.FLAGS
flags.DEFINE_string('voc_root', './pascal_voc_seg/VOCdevkit/VOC2012',
                    'VOC2012 folder; the three folders below default to its sub-folders.')
flags.DEFINE_string('image_folder', None, 'Folder of the images (default <voc_root>/JPEGImages).')
flags.DEFINE_string('semantic_segmentation_folder', None,
                    'Folder of the label PNGs, palette or raw (default <voc_root>/'
                    'SegmentationClassRaw if present, else SegmentationClass).')
flags.DEFINE_string('list_folder', None,
                    'Folder of <split>.txt lists (default <voc_root>/ImageSets/Segmentation).')
flags.DEFINE_enum('image_format', 'jpg', ['jpg', 'jpeg', 'png'], 'Image file extension.')
flags.DEFINE_enum('label_format', 'png', ['png'], 'Segmentation label format.')
flags.DEFINE_string('train_aug_label_folder', None,
                    'SBD labels for train_aug: SegmentationClassAug PNGs or SBD cls/*.mat.')
flags.DEFINE_string('splits', '', 'Comma-separated splits; empty = every list in --list_folder '
                    '(plus train_aug with --train_aug_label_folder).')
flags.DEFINE_string('output_dir', './tfrecord', 'Folder to write the TFRecord shards to.')
flags.DEFINE_integer('num_shards', voc.DEFAULT_NUM_SHARDS, 'Shards per split.')


def main(unused_argv):
  image_folder, label_folder, list_folder = voc.default_folders(FLAGS.voc_root)
  written = voc.build(
      FLAGS.output_dir,
      FLAGS.image_folder or image_folder,
      FLAGS.semantic_segmentation_folder or label_folder,
      FLAGS.list_folder or list_folder,
      splits=data_cli.split_list(FLAGS.splits) or None,
      image_format=FLAGS.image_format,
      train_aug_label_folder=FLAGS.train_aug_label_folder,
      num_shards=FLAGS.num_shards)
  data_cli.print_written(written, FLAGS.output_dir)


def run():
  """`deeplab-build-data voc2012` (and `python datasets/build_voc2012_data.py`)."""
  cli.run(main, __name__)


if __name__ == '__main__':
  run()
