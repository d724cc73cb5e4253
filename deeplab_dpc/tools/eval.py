r"""Evaluates DeepLab checkpoints on a dataset split: mIOU and per-class IoU.

As the original eval.py (same flags and defaults, same TensorBoard tags). Watch a
training run, evaluating each new checkpoint:

  python eval.py --dataset=cityscapes --dataset_dir=TFRECORDS --eval_split=val \
    --checkpoint_dir=LOG --eval_logdir=LOG/eval --model_variant=xception_65 \
    --output_stride=16 --decoder_output_stride=4 --eval_crop_size=1025,2049 \
    --dense_prediction_cell_json=deeplab_dpc/cells/dense_prediction_cell_branch5_top1_cityscapes.json

or evaluate once: `--max_number_of_evaluations=1` (the latest checkpoint of
--checkpoint_dir) or `--checkpoint_path=CKPT` (ours or an original TF1 one).
Multi-scale + flip: `--eval_scales=0.75,1.0,1.25 --add_flipped_images`.
Writes EVAL/metrics.json (the latest), EVAL/metrics-<step>.json and events.
See docs/evaluation.md.
"""

from absl import flags

from deeplab_dpc import cli
from deeplab_dpc import flags as model_flags
from deeplab_dpc.evaluation import eval_flags
from deeplab_dpc.evaluation import evaluator

FLAGS = flags.FLAGS

eval_flags.define_common_flags()
with cli.flag_group('Data'):
  flags.DEFINE_string('eval_split', 'val', 'Split to evaluate.')
with cli.flag_group('Checkpoints'):
  flags.DEFINE_integer('max_number_of_evaluations', 0,
                       'Evaluate this many checkpoints, then stop; 0 or less = forever.')
with cli.flag_group('Inference'):
  flags.DEFINE_integer('eval_batch_size', 1, 'Images per batch during evaluation.')
  flags.DEFINE_multi_string('eval_crop_size', ['513,513'],
                            'Crop size [height, width]: the model is built at it and images '
                            'are padded to it (must be at least every image size).')
with cli.flag_group('Output'):
  flags.DEFINE_string('eval_logdir', None, 'Where metrics.json and the event logs go.')
# --help lists the shared flags with this tool's own (absl shows only key flags).
flags.adopt_module_key_flags(eval_flags)
flags.adopt_module_key_flags(model_flags)


def main(argv):
  if len(argv) > 1:
    raise ValueError(f'unexpected arguments: {" ".join(argv[1:])}')
  if not FLAGS.eval_logdir:
    raise ValueError('--eval_logdir is required')
  eval_flags.check_common_flags()
  # Before the model is built, so that a missing checkpoint fails at once.
  eval_flags.check_checkpoint_now(FLAGS.max_number_of_evaluations)
  eval_flags.check_checkpoint_classes()
  config = eval_flags.eval_config(FLAGS.eval_split, FLAGS.eval_batch_size)
  runner = evaluator.Evaluator(eval_flags.model_options('eval_crop_size'), config,
                               eval_logdir=FLAGS.eval_logdir, show_progress=FLAGS.show_progress)
  if FLAGS.checkpoint_path:
    try:
      runner.evaluate_checkpoint(FLAGS.checkpoint_path, flag='checkpoint_path')
    finally:
      runner.close()
    return
  evaluator.run_evaluation_loop(
      runner, FLAGS.checkpoint_dir, eval_interval_secs=FLAGS.eval_interval_secs,
      max_number_of_evaluations=FLAGS.max_number_of_evaluations,
      checkpoint_timeout_secs=FLAGS.checkpoint_timeout_secs)


def run():
  """`deeplab-eval` (and `python eval.py`)."""
  cli.run(main, __name__)


if __name__ == '__main__':
  run()
