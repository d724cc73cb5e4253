r"""Our training step against the original's TF1 training graph, side by side.

Both steps start from the same weights (the TF1 graph's initial values, saved as
an original-format checkpoint and loaded into our model through our checkpoint
import) and are fed the same batch: ours is train.py's step
(`trainer.make_step_fn` with the original's momentum optimizer and poly rate, one
`tf.function`), the original's is `tf1_reference.build_training_graph`. Rounds
alternate between the two so that machine noise hits both alike; the table gives
the median seconds per step of each, and peak memory of each measured in a process
of its own (peak RSS on CPU, the allocator's peak on a GPU). The last line is
`speed_ratio=<ours/original steps per second> memory_ratio=<ours/original peak bytes>`.
A measurement, not a test.

  python benchmarks/training_vs_original.py --model=xception_65 --crop_size=257,257 \
      --batch_size=2 --rounds=3 [--device=cpu|gpu]
"""

import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time

from absl import app
from absl import flags

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')

import numpy as np  # pylint: disable=g-import-not-at-top,wrong-import-position
import tensorflow as tf  # pylint: disable=g-import-not-at-top,wrong-import-position

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from benchmarks import tf1_reference  # pylint: disable=g-import-not-at-top,wrong-import-position
from deeplab_dpc import cell  # pylint: disable=g-import-not-at-top,wrong-import-position
from deeplab_dpc import checkpoints  # pylint: disable=g-import-not-at-top,wrong-import-position
from deeplab_dpc import model as model_lib  # pylint: disable=g-import-not-at-top,wrong-import-position
from deeplab_dpc import options as options_lib  # pylint: disable=g-import-not-at-top,wrong-import-position
from deeplab_dpc.training import trainer  # pylint: disable=g-import-not-at-top,wrong-import-position

FLAGS = flags.FLAGS
flags.DEFINE_enum('model', 'xception_65', sorted(tf1_reference.XCEPTION_BLOCKS),
                  'Backbone (with the released DPC and the DeepLabv3+ decoder).')
flags.DEFINE_list('crop_size', ['513', '513'], 'Training crop "height,width".')
flags.DEFINE_integer('batch_size', 2, 'Batch size of both steps.')
flags.DEFINE_integer('rounds', 5, 'Timed rounds; each runs one step of each, alternating.')
flags.DEFINE_integer('num_classes', 19, 'Classes of the logits (19: Cityscapes).')
flags.DEFINE_enum('device', 'cpu', ['cpu', 'gpu'], 'Where both steps run.')
flags.DEFINE_enum('only', '', ['', 'ours', 'original'],
                  'Internal: run one step alone and print its peak memory.')
flags.DEFINE_string('checkpoint', '', 'Internal: the weights of --only=ours.')

BASE_LEARNING_RATE = 1e-4
TRAINING_NUMBER_OF_STEPS = 30000
IGNORE_LABEL = 255


def model_options(model_variant, crop_size, num_classes):
  """Our options for `model_variant` + released DPC + decoder at output stride 4."""
  return options_lib.ModelOptions.create(
      num_classes=num_classes, model_variant=model_variant, crop_size=tuple(crop_size),
      output_stride=16, decoder_output_stride=[4],
      dense_prediction_cell_json=cell.RELEASED_CELL_PATH)


def original_config(options):
  """The original's model options for the same model (tf1_reference's input)."""
  return {'model_variant': options.model_variant, 'output_stride': options.output_stride,
          'crop_size': list(options.crop_size),
          'decoder_output_stride': list(options.decoder_output_stride or []),
          'decoder_use_separable_conv': options.decoder_use_separable_conv,
          'dense_prediction_cell_config': [dict(b) for b in options.dense_prediction_cell_config],
          'outputs_to_num_classes': {'semantic': options.num_classes}}


def batch(options, batch_size, seed=0):
  """A fixed batch: [0, 255] images and labels with some ignored pixels."""
  rng = np.random.default_rng(seed)
  shape = (batch_size,) + tuple(options.crop_size)
  images = rng.uniform(0, 255, shape + (3,)).astype(np.float32)
  labels = rng.integers(0, options.num_classes, shape + (1,)).astype(np.int32)
  labels[rng.random(labels.shape) < 0.1] = IGNORE_LABEL
  return images, labels


class Original:
  """The original's training graph in a session; `step()` runs one update."""

  def __init__(self, options, batch_size, inject_keep_mask=False, seed=0):
    self.graph = tf1_reference.build_training_graph(
        original_config(options), batch_size, base_learning_rate=BASE_LEARNING_RATE,
        training_number_of_steps=TRAINING_NUMBER_OF_STEPS, ignore_label=IGNORE_LABEL,
        weight_decay=options.weight_decay, inject_keep_mask=inject_keep_mask, seed=seed)
    with self.graph.graph.as_default():
      init = tf.compat.v1.global_variables_initializer()
      # The model's variables only: no global step, no momentum slots.
      self.model_variables = [v for v in tf.compat.v1.global_variables()
                              if v.op.name != 'global_step' and 'Momentum' not in v.op.name]
      self.model_saver = tf.compat.v1.train.Saver(self.model_variables)
    self.session = tf.compat.v1.Session(graph=self.graph.graph)
    self.session.run(init)
    feeds = [self.graph.images, self.graph.labels]
    if inject_keep_mask:
      feeds.append(self.graph.keep_mask)
    self._run = self.session.make_callable([self.graph.train_op, self.graph.losses], feeds)

  def save(self, prefix):
    """Writes the model's variables as an original-format checkpoint."""
    with self.graph.graph.as_default():
      return self.model_saver.save(self.session, prefix, write_meta_graph=False)

  def step(self, *feeds):
    """One update; returns its losses (before the update's effect)."""
    return self._run(*feeds)[1]

  def variables(self):
    """{original name: current value} of the model's variables."""
    values = self.session.run(self.model_variables)
    return {v.op.name: value for v, value in zip(self.model_variables, values)}


class Ours:
  """Our model and train.py's step on the original's weights; `step()` runs one update."""

  def __init__(self, options, checkpoint_prefix, batch_size):
    self.model = model_lib.build_model(options).build_for_crop()
    checkpoints.load_checkpoint(self.model, checkpoint_prefix, mode=checkpoints.STRICT,
                                flag='checkpoint')
    config = trainer.TrainConfig(
        dataset='', dataset_dir='', train_logdir='', model_options=options,
        train_batch_size=batch_size, base_learning_rate=BASE_LEARNING_RATE,
        training_number_of_steps=TRAINING_NUMBER_OF_STEPS)
    self.optimizer = trainer.make_optimizer(config)
    self.optimizer.build(self.model.trainable_variables)
    step_fn = trainer.make_step_fn(self.model, self.optimizer, config, options.num_classes,
                                   IGNORE_LABEL)
    self._step = tf.function(lambda images, labels: {
        k: v for k, v in step_fn({'image': images, 'label': labels}).items() if k != 'logits'})

  def step(self, images, labels):
    """One update; returns its losses as numpy values."""
    return {k: v.numpy() for k, v in self._step(images, labels).items()}

  def variables(self):
    """{original name: current value} of every model variable."""
    return {name: v.numpy() for name, v in checkpoints.original_names(self.model).items()}


def _peak_memory_bytes(device):
  """The allocator's peak on a GPU, else this process's peak resident memory."""
  if device == 'gpu':
    return tf.config.experimental.get_memory_info('GPU:0')['peak']
  # VmHWM belongs to this program's address space; ru_maxrss would also count
  # the parent's peak at fork time.
  if os.path.exists('/proc/self/status'):
    with open('/proc/self/status', encoding='ascii') as f:
      for line in f:
        if line.startswith('VmHWM:'):
          return int(line.split()[1]) * 1024
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _measure_alone(which, options, batch_size, device, checkpoint):
  """Two steps of one side alone in this process, then its peak memory."""
  images, labels = batch(options, batch_size)
  if which == 'ours':
    runner = Ours(options, checkpoint, batch_size)
    images, labels = tf.constant(images), tf.constant(labels)
  else:
    runner = Original(options, batch_size)
  for _ in range(2):
    runner.step(images, labels)
  return _peak_memory_bytes(device)


def _alone_in_subprocess(which, checkpoint):
  args = [sys.executable, os.path.abspath(__file__), f'--only={which}',
          f'--model={FLAGS.model}', f'--crop_size={",".join(FLAGS.crop_size)}',
          f'--batch_size={FLAGS.batch_size}', f'--num_classes={FLAGS.num_classes}',
          f'--device={FLAGS.device}', f'--checkpoint={checkpoint}']
  out = subprocess.run(args, capture_output=True, text=True, check=False)
  if out.returncode:
    raise RuntimeError(f'measuring {which} alone failed:\n{out.stderr[-3000:]}')
  return json.loads(out.stdout.strip().splitlines()[-1])['peak_bytes']


def _check_device(device):
  if device == 'gpu' and not tf.config.list_physical_devices('GPU'):
    raise ValueError('--device=gpu: no GPU is visible to TensorFlow')
  if device == 'cpu':
    tf.config.set_visible_devices([], 'GPU')


def main(argv):
  del argv
  _check_device(FLAGS.device)
  options = model_options(FLAGS.model, [int(c) for c in FLAGS.crop_size], FLAGS.num_classes)
  if FLAGS.only:
    print(json.dumps({'peak_bytes': _measure_alone(
        FLAGS.only, options, FLAGS.batch_size, FLAGS.device, FLAGS.checkpoint)}))
    return
  images, labels = batch(options, FLAGS.batch_size)
  tmp = tempfile.TemporaryDirectory()  # pylint: disable=consider-using-with
  original = Original(options, FLAGS.batch_size)
  checkpoint = original.save(os.path.join(tmp.name, 'model.ckpt'))
  ours = Ours(options, checkpoint, FLAGS.batch_size)
  ours_inputs = (tf.constant(images), tf.constant(labels))
  # Warm-up: tracing, graph optimisation and allocator growth stay untimed.
  losses = {'original': original.step(images, labels), 'ours': ours.step(*ours_inputs)}
  times = {'original': [], 'ours': []}
  for _ in range(FLAGS.rounds):
    for name, run in (('original', lambda: original.step(images, labels)),
                      ('ours', lambda: ours.step(*ours_inputs))):
      start = time.perf_counter()
      run()
      times[name].append(time.perf_counter() - start)
  peaks = {name: _alone_in_subprocess(name, checkpoint) for name in ('original', 'ours')}
  tmp.cleanup()
  crop = 'x'.join(FLAGS.crop_size)
  print(f'{FLAGS.model} + DPC + decoder, OS16, {crop}, batch {FLAGS.batch_size}, '
        f'{FLAGS.device}, {os.cpu_count()} cores, {FLAGS.rounds} rounds')
  print(f'{"":<10} {"step (s) median [min, max]":>28} {"steps/s":>8} {"peak MB":>8} '
        f'{"first loss":>11}')
  for name in ('original', 'ours'):
    t = times[name]
    print(f'{name:<10} {statistics.median(t):>12.3f} [{min(t):.3f}, {max(t):.3f}]'
          f'{1 / statistics.median(t):>10.3f} {peaks[name] / 2**20:>8.0f} '
          f'{float(losses[name]["total_loss"]):>11.4f}')
  speed_ratio = statistics.median(times['original']) / statistics.median(times['ours'])
  print(f'speed_ratio={speed_ratio:.3f} memory_ratio={peaks["ours"] / peaks["original"]:.3f}')


if __name__ == '__main__':
  app.run(main)
