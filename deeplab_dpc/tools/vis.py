r"""Writes DeepLab predictions of a dataset split as images, as the original vis.py.

  python vis.py --dataset=cityscapes --dataset_dir=TFRECORDS --vis_split=val \
    --checkpoint_path=CKPT --vis_logdir=VIS --vis_crop_size=1025,2049 \
    --colormap_type=cityscapes --also_save_raw_predictions \
    --model_variant=xception_65 --output_stride=16 --decoder_output_stride=4 \
    --dense_prediction_cell_json=deeplab_dpc/cells/dense_prediction_cell_branch5_top1_cityscapes.json

writes VIS/segmentation_results/%06d_{image,label,prediction,side_by_side}.png and,
with --also_save_raw_predictions, VIS/raw_segmentation_results/<image>.png (for
Cityscapes: label ids, the benchmark's format). With --checkpoint_dir instead of
--checkpoint_path it watches a training run as eval.py does
(--max_number_of_iterations). See docs/evaluation.md.
"""

from absl import flags

from deeplab_dpc import cli
from deeplab_dpc import flags as model_flags
from deeplab_dpc.data import colormaps
from deeplab_dpc.evaluation import eval_flags
from deeplab_dpc.evaluation import visualizer

FLAGS = flags.FLAGS

eval_flags.define_common_flags()
with cli.flag_group('Data'):
  flags.DEFINE_string('vis_split', 'val', 'Split to visualise.')
with cli.flag_group('Checkpoints'):
  flags.DEFINE_integer('max_number_of_iterations', 0,
                       'Visualise this many checkpoints, then stop; 0 or less = forever.')
with cli.flag_group('Inference'):
  flags.DEFINE_integer('vis_batch_size', 1, 'Images per batch.')
  flags.DEFINE_multi_string('vis_crop_size', ['513,513'],
                            'Crop size [height, width] (at least every image size).')
with cli.flag_group('Output'):
  flags.DEFINE_string('vis_logdir', None, 'Where the images are written.')
  flags.DEFINE_string('colormap_type', 'pascal',
                      'Colormap: ' + ', '.join(colormaps.COLORMAP_NAMES) +
                      '; empty = the dataset\'s own. Unset with a --dataset_dir whose '
                      'dataset_info.json lists colours: those colours.')
  flags.DEFINE_boolean('also_save_raw_predictions', False,
                       'Also save raw predictions (Cityscapes: label ids for the benchmark).')
# --help lists the shared flags with this tool's own (absl shows only key flags).
flags.adopt_module_key_flags(eval_flags)
flags.adopt_module_key_flags(model_flags)


def main(argv):
  if len(argv) > 1:
    raise ValueError(f'unexpected arguments: {" ".join(argv[1:])}')
  eval_flags.check_common_flags()
  # Before the model is built, so that a missing checkpoint fails at once.
  eval_flags.check_checkpoint_now(FLAGS.max_number_of_iterations)
  eval_flags.check_checkpoint_classes()
  config = eval_flags.eval_config(FLAGS.vis_split, FLAGS.vis_batch_size)
  runner = visualizer.Visualizer(
      eval_flags.model_options('vis_crop_size'), config, FLAGS.vis_logdir,
      colormap_type=eval_flags.colormap_type(),
      also_save_raw_predictions=FLAGS.also_save_raw_predictions,
      show_progress=FLAGS.show_progress)
  if FLAGS.checkpoint_path:
    runner.visualize_checkpoint(FLAGS.checkpoint_path, flag='checkpoint_path')
    return
  visualizer.run_visualization_loop(
      runner, FLAGS.checkpoint_dir, eval_interval_secs=FLAGS.eval_interval_secs,
      max_number_of_iterations=FLAGS.max_number_of_iterations,
      checkpoint_timeout_secs=FLAGS.checkpoint_timeout_secs)


def run():
  """`deeplab-vis` (and `python vis.py`)."""
  cli.run(main, __name__)


if __name__ == '__main__':
  run()
