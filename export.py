"""Exports a DeepLab checkpoint (original TF1 or ours) as a SavedModel.

Example:
  python export.py --checkpoint_path=model.ckpt --export_path=/tmp/deeplab \
    --model_variant=xception_65 --output_stride=16 --crop_size=513,513 \
    --num_classes=19 --decoder_output_stride=4 \
    --dense_prediction_cell_json=deeplab_dpc/cells/dense_prediction_cell_branch5_top1_cityscapes.json
"""

from absl import flags

from deeplab_dpc import checkpoints
from deeplab_dpc import cli
from deeplab_dpc import flags as model_flags
from deeplab_dpc import model as model_lib
from deeplab_dpc import serving

FLAGS = flags.FLAGS

# Original export_model.py flags and defaults.
flags.DEFINE_string('checkpoint_path', None, 'Checkpoint to export (prefix or directory).')
flags.DEFINE_string('export_path', None, 'Directory of the SavedModel to write.')
flags.DEFINE_integer('num_classes', 21, 'Number of classes.')
flags.DEFINE_multi_string('crop_size', ['513', '513'], 'Crop size [height, width].')
flags.DEFINE_multi_string('inference_scales', ['1.0'], 'Scales of the image pyramid.')
flags.DEFINE_boolean('add_flipped_images', False, 'Add left-right flipped passes.')
model_flags.define_model_flags(output_stride=8)


def main(argv):
  del argv
  for name in ('checkpoint_path', 'export_path'):
    if not getattr(FLAGS, name):
      raise ValueError(f'--{name} is required')
  options = model_flags.model_options_from_flags(
      FLAGS.num_classes, model_flags.multi_ints(FLAGS.crop_size, 'crop_size'))
  model = model_lib.build_model(options)
  checkpoints.load_checkpoint(model, FLAGS.checkpoint_path, flag='checkpoint_path')
  path = serving.export_saved_model(
      model, FLAGS.export_path,
      inference_scales=model_flags.multi_floats(FLAGS.inference_scales, 'inference_scales'),
      add_flipped_images=FLAGS.add_flipped_images)
  print(f'SavedModel written to {path}')


if __name__ == '__main__':
  cli.run(main)
