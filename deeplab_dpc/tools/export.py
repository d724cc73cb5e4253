r"""Exports a DeepLab checkpoint (original TF1 or ours) as a SavedModel and/or a TFLite file.

Example:
  python export.py --checkpoint_path=model.ckpt --export_path=/tmp/deeplab \
    --model_variant=xception_65 --output_stride=16 --crop_size=513,513 \
    --num_classes=19 --decoder_output_stride=4 \
    --dense_prediction_cell_json=deeplab_dpc/cells/dense_prediction_cell_branch5_top1_cityscapes.json

Images of any size (SavedModel): add --min_resize_value=513 --max_resize_value=513.
TFLite (fixed input size = --crop_size): add --tflite_path=/tmp/deeplab.tflite and
optionally --quantization=dynamic_range, or --quantization=full_integer
--dataset=demo --dataset_dir=DIR (calibration images). See docs/serving.md.
"""

from absl import flags

from deeplab_dpc import checkpoints
from deeplab_dpc import cli
from deeplab_dpc import flags as model_flags
from deeplab_dpc import model as model_lib
from deeplab_dpc import serving

FLAGS = flags.FLAGS

# Original export_model.py flags and defaults.
model_flags.define_model_flags(output_stride=8)
with cli.flag_group('Model'):
  flags.DEFINE_integer('num_classes', 21, 'Number of classes; with --dataset (or a '
                       '--dataset_dir holding a dataset_info.json) the dataset\'s (a '
                       'different value is an error).')
# The original common.py --min_resize_value, --max_resize_value and --resize_factor: with
# them the SavedModel takes images of any size. --dataset and --dataset_dir name the
# full-integer calibration images and the dataset (built-in or custom) whose class count,
# names and colours the export takes.
model_flags.define_dataset_flags()
with cli.flag_group('Inference'):
  flags.DEFINE_multi_string('crop_size', ['513', '513'], 'Crop size [height, width].')
  flags.DEFINE_multi_string('inference_scales', ['1.0'], 'Scales of the image pyramid.')
  flags.DEFINE_boolean('add_flipped_images', False, 'Add left-right flipped passes.')
with cli.flag_group('Checkpoint and SavedModel'):
  flags.DEFINE_string('checkpoint_path', None, 'Checkpoint to export (prefix or directory).')
  flags.DEFINE_string('export_path', None,
                      'Directory of the SavedModel to write. A previous SavedModel export '
                      'there is replaced; any other file there is an error (see '
                      '--overwrite).')
  flags.DEFINE_boolean('overwrite', False,
                       'Replace whatever --export_path holds, even files that are not a '
                       'SavedModel export.')
# TFLite (new flags, not in the original).
with cli.flag_group('TFLite'):
  flags.DEFINE_string('tflite_path', None,
                      'Also (or only) write a TFLite file with a fixed [1, crop_h, crop_w, '
                      '3] float32 input.')
  flags.DEFINE_enum('quantization', 'none', ['none', 'dynamic_range', 'full_integer'],
                    'TFLite quantization; full_integer calibrates on --dataset_dir.')
  flags.DEFINE_boolean('tflite_with_logits', False, 'The TFLite file also outputs logits.')
  flags.DEFINE_string('representative_split', 'train', 'Split of the calibration images.')
  flags.DEFINE_integer('num_representative_images', 100, 'Number of calibration images.')
# --help lists the shared flags with this tool's own (absl shows only key flags).
flags.adopt_module_key_flags(model_flags)


def main(argv):
  del argv
  if not FLAGS.checkpoint_path:
    raise ValueError('--checkpoint_path is required')
  if not FLAGS.export_path and not FLAGS.tflite_path:
    raise ValueError('--export_path is required (or --tflite_path for a TFLite file only)')
  quantization = None if FLAGS.quantization == 'none' else FLAGS.quantization
  if quantization and not FLAGS.tflite_path:
    raise ValueError(f'--quantization={quantization} applies to the TFLite file: set '
                     '--tflite_path')
  if quantization == 'full_integer' and not FLAGS.dataset_dir:
    raise ValueError('--quantization=full_integer needs --dataset_dir (and --dataset) for '
                     'its calibration images')
  resize = {'min_resize_value': FLAGS.min_resize_value,
            'max_resize_value': FLAGS.max_resize_value,
            'resize_factor': FLAGS.resize_factor}
  serving.check_resize_values(**resize)
  if FLAGS.export_path:
    # Before building the model, so a refused path costs no time.
    serving.check_export_path(FLAGS.export_path, FLAGS.overwrite)
  crop_size = model_flags.crop_size(FLAGS.crop_size, 'crop_size')
  num_classes, dataset = model_flags.num_classes_and_dataset()
  # Before building the model: a checkpoint of another class count is named now.
  checkpoints.check_num_classes(
      FLAGS.checkpoint_path, num_classes, 'checkpoint_path',
      dataset.flag if dataset else f'--num_classes={num_classes}')
  options = model_flags.model_options_from_flags(num_classes, crop_size)
  scales = model_flags.multi_floats(FLAGS.inference_scales, 'inference_scales')
  model = model_lib.build_model(options)
  checkpoints.load_checkpoint(model, FLAGS.checkpoint_path, flag='checkpoint_path')
  if FLAGS.export_path:
    path = serving.export_saved_model(model, FLAGS.export_path, inference_scales=scales,
                                      add_flipped_images=FLAGS.add_flipped_images,
                                      overwrite=FLAGS.overwrite, dataset=dataset, **resize)
    print(f'SavedModel written to {path}')
  if FLAGS.tflite_path:
    # Imported only when asked: it loads the converter.
    from deeplab_dpc import tflite  # pylint: disable=g-import-not-at-top
    images = None
    if quantization == 'full_integer':
      images = tflite.representative_images_from_dataset(
          model_flags.dataset_name(), FLAGS.dataset_dir, FLAGS.representative_split,
          options.crop_size,
          FLAGS.num_representative_images, **resize)
    path = tflite.export_tflite(model, FLAGS.tflite_path, quantization, images,
                                inference_scales=scales,
                                add_flipped_images=FLAGS.add_flipped_images,
                                with_logits=FLAGS.tflite_with_logits)
    print(f'TFLite file ({FLAGS.quantization}) written to {path}')


def run():
  """`deeplab-export` (and `python export.py`)."""
  cli.run(main, __name__)


if __name__ == '__main__':
  run()
