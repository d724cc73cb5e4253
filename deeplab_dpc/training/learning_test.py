"""A real model learns the synthetic demo set in under a CPU minute.

The one slow test of the training loop: MobileNet-v2 (depth 0.5) with a decoder,
trained for 100 steps from the shipped pretrained demo backbone (as the demo's
models are), then evaluated on the demo val split. With six classes, always
answering "background" scores mIOU 0.128 on this split; these runs score about
0.40-0.45 (training seeds 1-3).
"""

import pytest

from deeplab_dpc import demo_backbone
from deeplab_dpc.data import demo
from deeplab_dpc.evaluation import evaluator
from deeplab_dpc.options import ModelOptions
from deeplab_dpc.training import trainer

_CHANCE_MIOU = 0.128  # Background everywhere: IoU 0.77 for one class of six.


@pytest.fixture(scope='module')
def demo_dir(tmp_path_factory):
  directory = str(tmp_path_factory.mktemp('demo'))
  demo.build(directory)
  return directory


def test_demo_set_is_learned(demo_dir, tmp_path):
  # Short runs need a faster batch-norm decay than the original's 0.9997.
  options = ModelOptions.create(
      num_classes=6, model_variant='mobilenet_v2', depth_multiplier=0.5, crop_size=(65, 65),
      output_stride=8, decoder_output_stride=(4,), batch_norm_decay=0.9)
  result = trainer.train(trainer.TrainConfig(
      dataset='demo', dataset_dir=demo_dir, train_logdir=str(tmp_path / 'train'),
      model_options=options, train_batch_size=8, training_number_of_steps=100,
      base_learning_rate=0.05, min_scale_factor=0.75, max_scale_factor=1.25, seed=1,
      log_steps=100, save_summaries_steps=0,
      tf_initial_checkpoint=demo_backbone.PRETRAINED_CHECKPOINT))
  losses = [loss for _, loss in result['losses']]
  assert sum(losses[-20:]) / 20 < 0.5 * sum(losses[:5]) / 5

  eval_options = options.replace(crop_size=[129, 129])
  runner = evaluator.Evaluator(
      eval_options, evaluator.EvalConfig(dataset='demo', dataset_dir=demo_dir),
      show_progress=False)
  runner.model.set_weights(result['model'].get_weights())
  metrics = runner.evaluate()
  assert metrics['miou'] > 2.5 * _CHANCE_MIOU, metrics
  foreground = [iou for iou in metrics['per_class_iou'][1:] if iou]
  assert sum(iou > 0.05 for iou in foreground) >= 3, metrics
