r"""Trains DeepLab (ASPP or Dense Prediction Cell head) with the original recipe.

Runs on one device, on every local GPU (MirroredStrategy), on many machines
(`--distribution=multi_worker` with TF_CONFIG) or on TPUs; resumes from the latest
checkpoint in --train_logdir. Flag names are the original train.py's.

Example (the demo set, CPU):
  python train.py --dataset=demo --dataset_dir=data/demo --train_logdir=runs/train \
    --model_variant=xception_41 --output_stride=16 --train_crop_size=65,65 \
    --train_batch_size=2 --base_learning_rate=0.01 --training_number_of_steps=100
"""

from absl import flags

from deeplab_dpc import cli
from deeplab_dpc import flags as model_flags
from deeplab_dpc.data import descriptors
from deeplab_dpc.training import class_weights
from deeplab_dpc.training import strategies
from deeplab_dpc.training import trainer

FLAGS = flags.FLAGS

model_flags.define_model_flags()
model_flags.define_dataset_flags()
with cli.flag_group('Data'):
  flags.DEFINE_string('train_split', 'train', 'Split to train on.')
  flags.DEFINE_float('min_scale_factor', 0.5, 'Minimum random scale.')
  flags.DEFINE_float('max_scale_factor', 2.0, 'Maximum random scale.')
  flags.DEFINE_float('scale_factor_step_size', 0.25, 'Step between random scales.')
with cli.flag_group('Training recipe'):
  flags.DEFINE_enum('learning_policy', 'poly', ['poly', 'step'], 'Learning rate policy.')
  flags.DEFINE_float('base_learning_rate', 1e-4, 'Base learning rate.')
  flags.DEFINE_float('decay_steps', 0.0, 'Poly decay steps (0: training_number_of_steps).')
  flags.DEFINE_float('end_learning_rate', 0.0, 'Poly end learning rate.')
  flags.DEFINE_float('learning_rate_decay_factor', 0.1, 'Step policy factor.')
  flags.DEFINE_integer('learning_rate_decay_step', 2000, 'Step policy period.')
  flags.DEFINE_float('learning_power', 0.9, 'Poly power.')
  flags.DEFINE_integer('training_number_of_steps', 30000, 'Steps of the whole run.')
  flags.DEFINE_float('momentum', 0.9, 'Momentum.')
  flags.DEFINE_integer('train_batch_size', 12, 'Global batch size.')
  flags.DEFINE_float('weight_decay', 4e-5, 'L2 weight decay.')
  flags.DEFINE_multi_string('train_crop_size', ['513', '513'], 'Training crop [height, width].')
  flags.DEFINE_float('last_layer_gradient_multiplier', 1.0, 'Gradient multiplier of the '
                     'last layers.')
  flags.DEFINE_boolean('upsample_logits', True, 'Upsample logits (not downsample labels).')
  flags.DEFINE_integer('slow_start_step', 0, 'Steps at the slow-start learning rate.')
  flags.DEFINE_float('slow_start_learning_rate', 1e-4, 'Slow-start learning rate.')
  flags.DEFINE_boolean('fine_tune_batch_norm', True, 'Train batch-norm statistics '
                       '(synchronised across replicas).')
  flags.DEFINE_integer('hard_example_mining_step', 0, 'Steps to anneal hard example mining.')
  flags.DEFINE_float('top_k_percent_pixels', 1.0, 'Fraction of the hardest pixels in the loss.')
  flags.DEFINE_multi_string('label_weights', None, 'One loss weight per class.')
  flags.DEFINE_enum('label_weights_from', class_weights.NONE, list(class_weights.METHODS),
                    'Derive --label_weights from the training split\'s pixel counts in '
                    'dataset_info.json (a custom --dataset_dir): median_frequency or '
                    'inverse_frequency; classes without pixels get 0.')
  flags.DEFINE_integer('seed', None, 'Seed of initialisation, data order and augmentation.')
with cli.flag_group('Initial checkpoint'):
  flags.DEFINE_string('tf_initial_checkpoint', None, 'Original TF1 checkpoint (ImageNet '
                      'backbone or full model) or one of ours.')
  flags.DEFINE_boolean('initialize_last_layer', True, 'Load the logits from the checkpoint.')
  flags.DEFINE_boolean('last_layers_contain_logits_only', False,
                       'Only the logits are last layers (else also the head and decoder).')
with cli.flag_group('Checkpoints and logging'):
  flags.DEFINE_string('train_logdir', None, 'Checkpoints and TensorBoard summaries.')
  flags.DEFINE_integer('log_steps', 10, 'Steps between console lines.')
  flags.DEFINE_integer('save_interval_secs', 1200, 'Seconds between checkpoints.')
  flags.DEFINE_integer('save_interval_steps', 0,
                       'Steps between checkpoints (0: by time only).')
  flags.DEFINE_integer('save_summaries_steps', 100, 'Steps between TensorBoard summaries.')
  flags.DEFINE_boolean('save_summaries_images', False, 'Add images, labels and predictions.')
  flags.DEFINE_integer('max_to_keep', 5, 'Checkpoints kept.')
with cli.flag_group('Devices and speed'):
  flags.DEFINE_enum('distribution', 'auto', list(strategies.DISTRIBUTIONS),
                    'tf.distribute strategy (multi_worker reads TF_CONFIG).')
  flags.DEFINE_string('tpu', '', 'TPU name or address for --distribution=tpu.')
  flags.DEFINE_boolean('deterministic', False, 'Deterministic ops (reproducible, slower).')
  flags.DEFINE_enum('mixed_precision', '', ['', 'float16', 'bfloat16'], 'Mixed precision.')
  flags.DEFINE_boolean('jit_compile', False, 'XLA-compile the training step (measure first: '
                       'XLA makes depthwise convs slower on CPU).')
# --help lists the shared flags with this tool's own (absl shows only key flags).
flags.adopt_module_key_flags(model_flags)


def main(argv):
  del argv
  for name in ('dataset_dir', 'train_logdir'):
    if not getattr(FLAGS, name):
      raise ValueError(f'--{name} is required')
  dataset = model_flags.dataset_name()
  descriptor = descriptors.get_dataset_descriptor(dataset, FLAGS.dataset_dir)
  options = model_flags.model_options_from_flags(
      descriptor.num_classes, model_flags.crop_size(FLAGS.train_crop_size, 'train_crop_size'),
      fine_tune_batch_norm=FLAGS.fine_tune_batch_norm, weight_decay=FLAGS.weight_decay)
  label_weights = class_weights.resolve_label_weights(
      model_flags.multi_floats(FLAGS.label_weights, 'label_weights'),
      FLAGS.label_weights_from, descriptor, FLAGS.train_split)
  config = trainer.TrainConfig(
      dataset=dataset, dataset_dir=FLAGS.dataset_dir, train_logdir=FLAGS.train_logdir,
      model_options=options, train_split=FLAGS.train_split,
      train_batch_size=FLAGS.train_batch_size,
      training_number_of_steps=FLAGS.training_number_of_steps,
      learning_policy=FLAGS.learning_policy, base_learning_rate=FLAGS.base_learning_rate,
      learning_power=FLAGS.learning_power,
      learning_rate_decay_step=FLAGS.learning_rate_decay_step,
      learning_rate_decay_factor=FLAGS.learning_rate_decay_factor,
      decay_steps=int(FLAGS.decay_steps), end_learning_rate=FLAGS.end_learning_rate,
      slow_start_step=FLAGS.slow_start_step,
      slow_start_learning_rate=FLAGS.slow_start_learning_rate, momentum=FLAGS.momentum,
      upsample_logits=FLAGS.upsample_logits, top_k_percent_pixels=FLAGS.top_k_percent_pixels,
      hard_example_mining_step=FLAGS.hard_example_mining_step, label_weights=label_weights,
      last_layer_gradient_multiplier=FLAGS.last_layer_gradient_multiplier,
      last_layers_contain_logits_only=FLAGS.last_layers_contain_logits_only,
      tf_initial_checkpoint=FLAGS.tf_initial_checkpoint,
      initialize_last_layer=FLAGS.initialize_last_layer,
      min_resize_value=FLAGS.min_resize_value, max_resize_value=FLAGS.max_resize_value,
      resize_factor=FLAGS.resize_factor, min_scale_factor=FLAGS.min_scale_factor,
      max_scale_factor=FLAGS.max_scale_factor,
      scale_factor_step_size=FLAGS.scale_factor_step_size, log_steps=FLAGS.log_steps,
      save_interval_secs=FLAGS.save_interval_secs,
      save_interval_steps=FLAGS.save_interval_steps,
      save_summaries_steps=FLAGS.save_summaries_steps,
      save_summaries_images=FLAGS.save_summaries_images, max_to_keep=FLAGS.max_to_keep,
      seed=FLAGS.seed, deterministic=FLAGS.deterministic,
      mixed_precision=FLAGS.mixed_precision, jit_compile=FLAGS.jit_compile,
      distribution=FLAGS.distribution, tpu=FLAGS.tpu)
  result = trainer.train(config)
  print(f'global step {result["global_step"]}; checkpoint {result["checkpoint"]}')


def run():
  """`deeplab-train` (and `python train.py`)."""
  cli.run(main, __name__)


if __name__ == '__main__':
  run()
