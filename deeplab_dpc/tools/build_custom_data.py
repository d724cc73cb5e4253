r"""Converts your own folder of images and masks to TFRecords plus dataset_info.json.

  python datasets/build_custom_data.py --image_folder=my_data/images \
    --semantic_segmentation_folder=my_data/masks --output_dir=my_data/tfrecord \
    --class_names=background,cat,dog [--list_folder=my_data/lists | --val_fraction=0.1]

Images are <stem>.jpg|jpeg|png, masks <stem>.png: single-channel class ids,
palette PNGs, or RGB colour masks with --color_map. Everything is checked
before anything is written (deeplab_dpc/data/custom.py); then every CLI reads
the class count, ignore label and splits from the folder's dataset_info.json.
"""

from absl import flags

from deeplab_dpc import cli
from deeplab_dpc import constants
from deeplab_dpc.data import custom
from deeplab_dpc.data import dataset_info

FLAGS = flags.FLAGS
flags.DEFINE_string('image_folder', None, 'Folder of the <stem>.jpg|jpeg|png images.')
flags.DEFINE_string('semantic_segmentation_folder', None,
                    'Folder of the <stem>.png masks: class ids, palette PNGs, or RGB colour '
                    'masks with --color_map.')
flags.DEFINE_string('output_dir', None, 'Folder to write the shards and dataset_info.json to.')
flags.DEFINE_string('list_folder', None,
                    'Folder of <split>.txt lists, one image stem per line; every list is a '
                    'split. Without it the pairs are split into train and val by --val_fraction.')
flags.DEFINE_float('val_fraction', None,
                   f'Without --list_folder: fraction of the pairs drawn for val (default '
                   f'{custom.DEFAULT_VAL_FRACTION}; 0 = train only).')
flags.DEFINE_integer('seed', 0, 'Seed of the --val_fraction draw.')
flags.DEFINE_string('class_names', None, 'Comma-separated class names, class 0 first; or give '
                    '--num_classes.')
flags.DEFINE_integer('num_classes', None, 'Number of classes (named class_0, class_1, ...); or '
                     'give --class_names.')
flags.DEFINE_integer('ignore_label', constants.IGNORE_LABEL,
                     'Mask value of pixels that belong to no class.')
flags.DEFINE_string('color_map', None,
                    'JSON file mapping the colours of RGB colour masks to class ids, e.g. '
                    '{"#000000": 0, "255,0,0": 1, "#ffffff": 255}.')
flags.DEFINE_alias('colormap', 'color_map')
flags.DEFINE_integer('num_shards', custom.DEFAULT_NUM_SHARDS, 'Shards per split.')
flags.DEFINE_string('dataset_name', dataset_info.CUSTOM_DATASET,
                    'The name recorded in dataset_info.json.')
flags.DEFINE_enum('image_format', None, list(custom.IMAGE_FORMATS),
                  'Only images of this extension (default: jpg, jpeg and png).')
flags.DEFINE_enum('label_format', custom.LABEL_FORMAT, [custom.LABEL_FORMAT],
                  'Segmentation label format.')


def main(unused_argv):
  info = custom.build(
      FLAGS.output_dir, FLAGS.image_folder, FLAGS.semantic_segmentation_folder,
      list_folder=FLAGS.list_folder, val_fraction=FLAGS.val_fraction, seed=FLAGS.seed,
      class_names=FLAGS.class_names, num_classes=FLAGS.num_classes,
      ignore_label=FLAGS.ignore_label, color_map=FLAGS.color_map,
      num_shards=FLAGS.num_shards, dataset_name=FLAGS.dataset_name,
      image_format=FLAGS.image_format, label_format=FLAGS.label_format)
  for split, count in info['splits_to_sizes'].items():
    print(f'{split}: {count} examples in {FLAGS.output_dir}')
  print(f'{info["num_classes"]} classes; wrote {dataset_info.info_path(FLAGS.output_dir)}')


def run():
  """`deeplab-build-data custom` (and `python datasets/build_custom_data.py`)."""
  cli.run(main, __name__)


if __name__ == '__main__':
  run()
