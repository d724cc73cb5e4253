r"""Cost of the architecture search on this machine (a measurement, not a test).

One run measures, and prints as a Markdown table:

1. one proxy-task training step against one full-model training step for the same
   batch and crop, as the paper sets them against each other: the full model is the one
   searched cells end up in (Xception-71 + the cell + decoder, trained end to end), the
   proxy trains the cell + logits on cached MobileNet-v2 features (the paper's proxy is
   meant to be >= 100x cheaper); also the proxy on the full model's own backbone features;
2. candidates per hour for the demo configuration (search.py's contract flags);
3. trials per hour with 2 local workers against 1.

  python benchmarks/search_benchmark.py --work_dir=/tmp/search_bench
"""

import json
import os
import shutil
import time

from absl import app
from absl import flags

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')

FLAGS = flags.FLAGS
flags.DEFINE_string('work_dir', '/tmp/search_benchmark', 'Scratch folder (emptied first).')
flags.DEFINE_string('step_crop_size', '513,513', 'Crop of the step comparison.')
flags.DEFINE_string('step_model_variant', 'xception_71', 'Backbone of the full model in the '
                    'step comparison (the paper\'s final models use xception_71).')
flags.DEFINE_string('step_decoder_output_stride', '4', 'Decoder of the full model ("" for none).')
flags.DEFINE_string('proxy_model_variant', 'mobilenet_v2', 'Backbone whose cached features the '
                    'proxy trains on (the paper\'s proxy: mobilenet_v2).')
flags.DEFINE_integer('batch_size', 4, 'Batch of the step comparison (the paper trains with '
                     '8; xception_71 + decoder at 513x513 needs more than 24 GB for 8).')
flags.DEFINE_integer('full_training_steps', 90000, 'Steps of a full training (the original '
                     'Cityscapes recipe), for the cost per candidate.')
flags.DEFINE_integer('timed_steps', 5, 'Timed full-model steps (proxy: 10x as many).')
flags.DEFINE_integer('demo_trials', 6, 'Trials of each search measurement.')
flags.DEFINE_integer('demo_proxy_steps', 10, 'Proxy steps per trial in the search runs.')
flags.DEFINE_string('output_json', '', 'Also write the numbers here.')

_RELEASED_CELL = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                              'deeplab_dpc', 'cells',
                              'dense_prediction_cell_branch5_top1_cityscapes.json')


def _time_steps(step, args, warmup, count):
  for _ in range(warmup):
    float(step(*args))
  start = time.perf_counter()
  for _ in range(count):
    value = step(*args)
  float(value)
  return (time.perf_counter() - start) / count


def _features(model_variant, crop, images):
  """Output-stride-16 backbone features of `images` (what a feature cache holds)."""
  from deeplab_dpc import model as model_lib  # pylint: disable=g-import-not-at-top
  from deeplab_dpc import options  # pylint: disable=g-import-not-at-top
  opts = options.ModelOptions.create(num_classes=2, model_variant=model_variant,
                                     crop_size=list(crop), output_stride=16)
  return model_lib.build_model(opts).backbone(images, training=False)['features']


def step_comparison(crop, batch_size, timed_steps, model_variant='xception_71',
                    decoder_output_stride=(4,), proxy_model_variant='mobilenet_v2'):
  """Seconds per full-model step and per proxy step on the same batch and crop."""
  import keras  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from deeplab_dpc import cell as cell_lib  # pylint: disable=g-import-not-at-top
  from deeplab_dpc import model as model_lib  # pylint: disable=g-import-not-at-top
  from deeplab_dpc import model_stats  # pylint: disable=g-import-not-at-top
  from deeplab_dpc import options  # pylint: disable=g-import-not-at-top
  from deeplab_dpc.search import proxy_task  # pylint: disable=g-import-not-at-top
  from deeplab_dpc.training import losses  # pylint: disable=g-import-not-at-top

  cell = cell_lib.cell_to_json(cell_lib.load_cell(_RELEASED_CELL))
  num_classes = 19
  opts = options.ModelOptions.create(num_classes=num_classes, model_variant=model_variant,
                                     crop_size=list(crop), output_stride=16,
                                     decoder_output_stride=decoder_output_stride or None,
                                     dense_prediction_cell_config=cell)
  model = model_lib.build_model(opts)
  optimizer = keras.optimizers.SGD(0.01, momentum=0.9)
  optimizer.build(model.trainable_variables)
  rng = np.random.default_rng(0)
  images = tf.constant(rng.uniform(0, 255, (batch_size,) + tuple(crop) + (3,)), tf.float32)
  labels = tf.constant(rng.integers(0, num_classes, (batch_size,) + tuple(crop) + (1,)),
                       tf.int32)

  @tf.function
  def full_step(images, labels):
    with tf.GradientTape() as tape:
      logits = model(images, training=True)
      loss = losses.softmax_cross_entropy(logits, labels, num_classes) + tf.add_n(model.losses)
    grads = tape.gradient(loss, model.trainable_variables)
    optimizer.apply_gradients(zip(grads, model.trainable_variables))
    return loss

  full = _time_steps(full_step, (images, labels), 2, timed_steps)
  out = {'model_variant': model_variant, 'decoder_output_stride': list(decoder_output_stride),
         'crop': list(crop), 'batch_size': batch_size, 'full_step_seconds': full,
         'full_multiply_adds': model_stats.multiply_adds(model)['total'], 'proxies': []}
  own_features = model.backbone(images, training=False)['features']
  for variant, features in ((proxy_model_variant, _features(proxy_model_variant, crop, images)),
                            (f'{model_variant} (own)', own_features)):
    manifest = {'num_classes': num_classes, 'feature_shape': list(features.shape[1:]),
                'config': {'output_stride': 16}}
    proxy = {'features_of': variant, 'feature_shape': list(features.shape)}
    for upsample_logits, key in ((True, 'step_seconds'),
                                 (False, 'step_seconds_downsampled_labels')):
      proxy_step, proxy_model = proxy_task.proxy_train_step_fn(
          cell, manifest, proxy_task.ProxyConfig(upsample_logits=upsample_logits))
      if 'multiply_adds' not in proxy:  # The same cell either way.
        proxy['multiply_adds'] = model_stats.function_multiply_adds(
            lambda x, m=proxy_model: m(x, training=False),
            [1] + manifest['feature_shape'])['total']
      proxy[key] = _time_steps(proxy_step, (tf.cast(features, tf.float16), labels), 3,
                               timed_steps * 10)
      proxy[key.replace('step_seconds', 'speedup')] = full / proxy[key]
    out['proxies'].append(proxy)
  return out


def _search_config(work_dir, data_dir, cache_dir, search_name, trials, steps, workers):
  from deeplab_dpc.search import feature_cache  # pylint: disable=g-import-not-at-top
  from deeplab_dpc.search import proxy_task  # pylint: disable=g-import-not-at-top
  from deeplab_dpc.search import study  # pylint: disable=g-import-not-at-top
  # search.py's contract configuration: demo, MobileNet-v2, 65x65 crops.
  cache = feature_cache.CacheConfig(dataset='demo', dataset_dir=data_dir, crop_size=(65, 65))
  return study.SearchConfig(search_dir=os.path.join(work_dir, search_name), cache=cache,
                            cache_dir=cache_dir,
                            proxy=proxy_task.ProxyConfig(training_number_of_steps=steps),
                            max_trials=trials, num_workers=workers)


def search_rates(work_dir, trials, steps):
  """Trials per hour: embedded, 1 local worker, 2 local workers (cache built before)."""
  from deeplab_dpc.data import demo  # pylint: disable=g-import-not-at-top
  from deeplab_dpc.search import study  # pylint: disable=g-import-not-at-top
  data_dir = os.path.join(work_dir, 'demo')
  demo.build(data_dir)
  cache_dir = os.path.join(work_dir, 'feature_cache')
  start = time.perf_counter()
  study.ensure_cache(_search_config(work_dir, data_dir, cache_dir, 'x', 1, steps, 0))
  cache_seconds = time.perf_counter() - start
  out = {'cache_seconds': cache_seconds, 'trials': trials, 'proxy_steps': steps}
  for name, workers in (('embedded', 0), ('workers_1', 1), ('workers_2', 2)):
    config = _search_config(work_dir, data_dir, cache_dir, name, trials, steps, workers)
    start = time.perf_counter()
    summary = study.run_search(config)
    seconds = time.perf_counter() - start
    out[name] = {'seconds': seconds, 'trials_per_hour': summary['trials'] / seconds * 3600,
                 'completed': summary['completed']}
  return out


def main(argv):
  del argv
  from deeplab_dpc.flags import multi_ints  # pylint: disable=g-import-not-at-top
  from deeplab_dpc.search import proxy_task  # pylint: disable=g-import-not-at-top
  if os.path.exists(FLAGS.work_dir):
    shutil.rmtree(FLAGS.work_dir)
  os.makedirs(FLAGS.work_dir)
  crop = tuple(multi_ints([FLAGS.step_crop_size], 'step_crop_size'))
  decoder = tuple(multi_ints([FLAGS.step_decoder_output_stride], 'step_decoder_output_stride')
                  ) if FLAGS.step_decoder_output_stride else ()
  # The searches first: after the step comparison this process holds ~11 GB.
  rates = search_rates(FLAGS.work_dir, FLAGS.demo_trials, FLAGS.demo_proxy_steps)
  steps = step_comparison(crop, FLAGS.batch_size, FLAGS.timed_steps, FLAGS.step_model_variant,
                          decoder, FLAGS.proxy_model_variant)
  print('| measurement | value |\n|---|---|')
  decoder_text = f' + decoder {decoder[0]}' if decoder else ''
  print(f'| full-model training step ({steps["model_variant"]} + released DPC{decoder_text}, '
        f'OS16, {crop[0]}x{crop[1]}, batch {steps["batch_size"]}) | '
        f'{steps["full_step_seconds"] * 1000:.0f} ms |')
  proxy_steps = proxy_task.ProxyConfig().training_number_of_steps
  for proxy in steps['proxies']:
    shape = 'x'.join(str(d) for d in proxy['feature_shape'][1:])
    print(f'| proxy step on cached {proxy["features_of"]} features ({shape}): labels '
          f'downsampled (--proxy_upsample_logits=false) / logits upsampled | '
          f'{proxy["step_seconds_downsampled_labels"] * 1000:.0f} ms = '
          f'{proxy["speedup_downsampled_labels"]:.0f}x cheaper / '
          f'{proxy["step_seconds"] * 1000:.0f} ms = {proxy["speedup"]:.0f}x |')
    print(f'| ... multiply-adds per image: full model / proxy (the most a step can save at '
          f'equal efficiency) | {steps["full_multiply_adds"] / 1e9:.1f} G / '
          f'{proxy["multiply_adds"] / 1e9:.2f} G = '
          f'{steps["full_multiply_adds"] / proxy["multiply_adds"]:.0f}x |')
    print(f'| ... cost per candidate: {FLAGS.full_training_steps} full steps vs {proxy_steps} '
          f'proxy steps (labels downsampled) | '
          f'{proxy["speedup_downsampled_labels"] * FLAGS.full_training_steps / proxy_steps:.0f}x '
          'cheaper |')
  print(f'| demo feature cache (320 + 80 images, 65x65) | {rates["cache_seconds"]:.1f} s |')
  for name, label in (('embedded', 'embedded (1 process)'), ('workers_1', 'chief + 1 worker'),
                      ('workers_2', 'chief + 2 workers')):
    print(f'| demo candidates/hour, {rates["proxy_steps"]} proxy steps, {label} | '
          f'{rates[name]["trials_per_hour"]:.0f} ({rates["trials"]} trials in '
          f'{rates[name]["seconds"]:.0f} s) |')
  if FLAGS.output_json:
    with open(FLAGS.output_json, 'w', encoding='utf-8') as f:
      json.dump({'steps': steps, 'search': rates}, f, indent=1)


if __name__ == '__main__':
  app.run(main)
