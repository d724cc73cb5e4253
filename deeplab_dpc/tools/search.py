r"""Searches for a dense prediction cell (Chen et al., NeurIPS 2018); see docs/search.md.

  python search.py --dataset=demo --dataset_dir=DIR --search_dir=S \
      --model_variant=mobilenet_v2 --train_crop_size=65,65 \
      --proxy_training_number_of_steps=10 --max_trials=20

Modes:
  search (default)  build the feature cache on first use, then run or resume the
                    study: one JSON line per finished trial in S/trials.jsonl, the top
                    cells in S/best_cells/rank_<r>_<hash8>.json (train.py's
                    --dense_prediction_cell_json takes them), TensorBoard in
                    S/tensorboard. Run again with a larger --max_trials to go on.
  cache             only build (or finish) the feature cache.
  rerank            train the --rerank_top_k best cells as full models, evaluate them,
                    report Spearman's rho between proxy and full scores and the
                    winner (S/rerank.json, S/rerank_winner.json).
  fidelity          measure how well the proxy task predicts full training: draw
                    --fidelity_num_cells cells uniformly (--fidelity_cell_seed), score
                    each with the proxy task and with the re-ranking recipe (the
                    --rerank_* flags), train --fidelity_noise_cells of them with
                    --fidelity_noise_seeds seeds for the seed noise; report the
                    spreads, Spearman's rho and Kendall's tau with bootstrap intervals
                    (S/fidelity/fidelity.json, fidelity.png). Resumable.

--num_workers=N runs a chief and N worker processes on this machine; with
KERASTUNER_TUNER_ID / KERASTUNER_ORACLE_IP / KERASTUNER_ORACLE_PORT set, this process
is a KerasTuner chief or worker (several machines, docs/search.md).
"""

import json
import os
import sys

from absl import flags
from absl import logging

from deeplab_dpc import cli
from deeplab_dpc import constants
from deeplab_dpc import flags as model_flags
from deeplab_dpc.flags import multi_ints

FLAGS = flags.FLAGS

# search.py's own default (the paper searched on Cityscapes).
_DEFAULT_DATASET = 'cityscapes'

with cli.flag_group('Search'):
  flags.DEFINE_enum('mode', 'search', ['search', 'cache', 'rerank', 'fidelity'], 'What to do.')
  flags.DEFINE_string('search_dir', None, 'The study folder (created; resumed if it exists).')
with cli.flag_group('Data'):
  flags.DEFINE_string('dataset', None, model_flags.dataset_flag_help(_DEFAULT_DATASET))
  flags.DEFINE_string('dataset_dir', None, 'Folder of the dataset TFRecords; a folder with a '
                      'dataset_info.json needs no --dataset.')
  flags.DEFINE_string('train_split', 'train', 'Split the proxy task trains on.')
  flags.DEFINE_string('eval_split', 'val', 'Split the proxy task is scored on.')
# The original flag names.
with cli.flag_group('Backbone of the cached features'):
  flags.DEFINE_string('model_variant', 'mobilenet_v2',
                      'Backbone: mobilenet_v2 (as the paper) or xception_41/65/71.')
  flags.DEFINE_integer('output_stride', 16, 'Output stride of the cached features.')
  flags.DEFINE_float('depth_multiplier', 1.0, 'MobileNet-v2 width multiplier.')
  flags.DEFINE_integer('divisible_by', None, 'MobileNet-v2 channel rounding.')
  flags.DEFINE_string('tf_initial_checkpoint', '',
                      'Backbone checkpoint (original TF1 release or ours). Unset: a randomly '
                      'initialised backbone (a warning; only for tests and demos).')
  flags.DEFINE_multi_string('train_crop_size', ['769,769'], 'Crop (height,width) of the cached '
                            'training and validation crops (paper: 769,769 on Cityscapes).')
  flags.DEFINE_float('min_scale_factor', 0.5, 'Training augmentation: minimum scale.')
  flags.DEFINE_float('max_scale_factor', 2.0, 'Training augmentation: maximum scale.')
  flags.DEFINE_float('scale_factor_step_size', 0.25, 'Training augmentation: scale step.')
with cli.flag_group('Feature cache'):
  flags.DEFINE_string('cache_dir', '',
                      'Feature cache folder; default <search_dir>/feature_cache.')
  flags.DEFINE_enum('feature_dtype', 'float16', ['float16', 'float32'],
                    'Dtype of the cached features.')
  flags.DEFINE_integer('proxy_augmentation_copies', 1,
                       'K: augmented copies of every training image in the cache.')
  flags.DEFINE_integer('proxy_max_train_examples', 0, 'Cache only the first N training images '
                       '(0: all).')
  flags.DEFINE_integer('proxy_max_eval_examples', 0, 'Cache only the first N validation images '
                       '(0: all).')
  flags.DEFINE_integer('cache_examples_per_shard', 256, 'Cached examples per TFRecord shard.')
  flags.DEFINE_integer('cache_batch_size', 8, 'Images per backbone call while caching.')
with cli.flag_group('Proxy task'):
  flags.DEFINE_integer('proxy_training_number_of_steps', 30000,
                       'Proxy training steps per candidate (paper: 30000).')
  flags.DEFINE_integer('proxy_batch_size', 8, 'Proxy batch size (paper: 8).')
  flags.DEFINE_float('proxy_base_learning_rate', 0.01, 'Proxy poly learning rate (paper: 0.01).')
  flags.DEFINE_float('proxy_learning_power', 0.9, 'Poly power.')
  flags.DEFINE_float('proxy_momentum', 0.9, 'SGD momentum.')
  flags.DEFINE_float('proxy_weight_decay', constants.WEIGHT_DECAY, 'L2 on conv weights.')
  flags.DEFINE_boolean('proxy_upsample_logits', True, 'Proxy loss on logits upsampled to the '
                       'labels (the original); false: labels downsampled, a much cheaper step.')
  flags.DEFINE_multi_string('label_weights', None, 'One loss weight per class, in the proxy '
                            'task and the re-ranking\'s full training.')
  flags.DEFINE_enum('label_weights_from', 'none',
                    ['none', 'median_frequency', 'inverse_frequency'],
                    'Derive --label_weights from --train_split\'s pixel counts in '
                    'dataset_info.json (a custom --dataset_dir); classes without pixels get 0.')
  flags.DEFINE_float('proxy_batch_norm_decay', None, 'Batch-norm decay of the candidate cells '
                     '(unset: the original 0.9997; short proxy runs need e.g. 0.9).')
with cli.flag_group('Search'):
  flags.DEFINE_integer('num_branches', 5, 'B: branches per cell.')
  flags.DEFINE_integer('max_trials', 100, 'Trials of the study; run again with more to go on.')
  flags.DEFINE_string('algorithm', 'random_local', 'random_local: the paper\'s random search plus '
                      'mutations of the --top_k best cells; evolution: regularised (aging) '
                      'evolution with --population_size and --tournament_size; '
                      'successive_halving: rungs of proxy steps (--eta, --num_rungs).')
  flags.DEFINE_float('mutation_probability', 0.5, 'Chance that a candidate is a mutation of one '
                     'of the --top_k best cells (else uniformly sampled; random_local).')
  flags.DEFINE_integer('top_k', 10, 'Mutation parents: the k best cells so far (random_local).')
  flags.DEFINE_integer('population_size', 20, 'Evolution: the most recently completed trials '
                       'that form the population (the oldest dies as each new one completes).')
  flags.DEFINE_integer('tournament_size', 5, 'Evolution: members drawn per candidate; the best '
                       'of them is mutated.')
  flags.DEFINE_integer('eta', 3, 'Successive halving: the best 1/eta of a rung\'s trials go on '
                       'to the next rung, with eta times the proxy steps.')
  flags.DEFINE_string('prescreen', '', 'NAME:FRACTION: draw ceil(1/FRACTION) candidates per trial '
                      'and train only the best by the zero-cost score NAME (synflow, grad_norm, '
                      'jacob_cov) on one cached minibatch; empty: train every candidate.')
  flags.DEFINE_integer('num_rungs', 3, 'Successive halving: rungs; the last trains '
                       '--proxy_training_number_of_steps.')
  flags.DEFINE_list('seed_cells', [], 'Cell JSON files to try first (comma list).')
  flags.DEFINE_float('max_madds', None, 'Budget: multiply-adds of the cell\'s branches on the '
                     'cached features.')
  flags.DEFINE_float('max_params', None, 'Budget: weights of the cell\'s branches.')
  flags.DEFINE_integer('num_best_cells', 5, 'Top cells written to <search_dir>/best_cells.')
  flags.DEFINE_integer('num_workers', 0, '0: one process; N: a chief and N local workers.')
  flags.DEFINE_integer('seed', 0, 'Seed of the search, the cache and the proxy task.')
  flags.DEFINE_integer('max_consecutive_failed_trials', 10,
                       'Stop the search after this many failed trials in a row.')
with cli.flag_group('Re-ranking (--mode=rerank)'):
  flags.DEFINE_integer('rerank_top_k', 8, 'Best proxy cells to train as full models (with 3, '
                       'Spearman\'s rho can only be +-0.5 or +-1; 8 cells rank in 40320 ways).')
  flags.DEFINE_integer('rerank_training_number_of_steps', 30000, 'Full training steps per cell.')
  flags.DEFINE_integer('rerank_train_batch_size', 8, 'Full training batch size.')
  flags.DEFINE_float('rerank_base_learning_rate', 0.01, 'Full training learning rate.')
  flags.DEFINE_float('rerank_batch_norm_decay', None, 'Batch-norm decay of the full models '
                     '(unset: the original 0.9997; short runs need e.g. 0.9).')
  flags.DEFINE_multi_string('rerank_eval_crop_size', None,
                            'Evaluation crop (default: the dataset\'s whole image).')
  flags.DEFINE_multi_string('rerank_decoder_output_stride', None,
                            'Decoder of the full models (e.g. 4); unset: none.')
# The full recipe is the re-ranking's.
with cli.flag_group('Proxy fidelity (--mode=fidelity)'):
  flags.DEFINE_integer('fidelity_num_cells', 16, 'N: cells drawn uniformly from the space (>= 3).')
  flags.DEFINE_integer('fidelity_cell_seed', 0, 'Seed of the cell draw.')
  flags.DEFINE_integer('fidelity_noise_cells', 2, 'How many of the cells are also trained with '
                       'other seeds, to measure the seed noise of one full training.')
  flags.DEFINE_integer('fidelity_noise_seeds', 3, 'Training seeds of each of those cells.')


def _crop_size(values, flag):
  crop = multi_ints(values, flag)
  if not crop or len(crop) != 2:
    raise ValueError(f'--{flag} must be height,width (e.g. 65,65), got {values}')
  return tuple(crop)


def label_weights():
  """The class weights of --label_weights / --label_weights_from (`class_weights`)."""
  from deeplab_dpc.data import descriptors  # pylint: disable=g-import-not-at-top
  from deeplab_dpc.training import class_weights  # pylint: disable=g-import-not-at-top
  descriptor = descriptors.get_dataset_descriptor(model_flags.dataset_name(_DEFAULT_DATASET),
                                                  FLAGS.dataset_dir)
  weights = class_weights.resolve_label_weights(
      model_flags.multi_floats(FLAGS.label_weights, 'label_weights'),
      FLAGS.label_weights_from, descriptor, FLAGS.train_split)
  return weights


def search_config():
  """The `SearchConfig` of the flags."""
  from deeplab_dpc.search import feature_cache  # pylint: disable=g-import-not-at-top
  from deeplab_dpc.search import proxy_task  # pylint: disable=g-import-not-at-top
  from deeplab_dpc.search import study  # pylint: disable=g-import-not-at-top
  if not FLAGS.search_dir:
    raise ValueError('--search_dir is required')
  if not FLAGS.dataset_dir:
    raise ValueError('--dataset_dir is required')
  cache = feature_cache.CacheConfig(
      dataset=model_flags.dataset_name(_DEFAULT_DATASET), dataset_dir=FLAGS.dataset_dir,
      crop_size=_crop_size(FLAGS.train_crop_size, 'train_crop_size'),
      model_variant=FLAGS.model_variant, depth_multiplier=FLAGS.depth_multiplier,
      divisible_by=FLAGS.divisible_by, output_stride=FLAGS.output_stride,
      tf_initial_checkpoint=FLAGS.tf_initial_checkpoint, feature_dtype=FLAGS.feature_dtype,
      augmentation_copies=FLAGS.proxy_augmentation_copies, train_split=FLAGS.train_split,
      eval_split=FLAGS.eval_split, min_scale_factor=FLAGS.min_scale_factor,
      max_scale_factor=FLAGS.max_scale_factor,
      scale_factor_step_size=FLAGS.scale_factor_step_size,
      max_train_examples=FLAGS.proxy_max_train_examples,
      max_eval_examples=FLAGS.proxy_max_eval_examples, seed=FLAGS.seed,
      examples_per_shard=FLAGS.cache_examples_per_shard)
  proxy = proxy_task.ProxyConfig(
      training_number_of_steps=FLAGS.proxy_training_number_of_steps,
      batch_size=FLAGS.proxy_batch_size, base_learning_rate=FLAGS.proxy_base_learning_rate,
      learning_power=FLAGS.proxy_learning_power, momentum=FLAGS.proxy_momentum,
      weight_decay=FLAGS.proxy_weight_decay, batch_norm_decay=FLAGS.proxy_batch_norm_decay,
      upsample_logits=FLAGS.proxy_upsample_logits,
      label_weights=label_weights(), seed=FLAGS.seed)
  return study.SearchConfig(
      search_dir=FLAGS.search_dir, cache=cache, proxy=proxy, cache_dir=FLAGS.cache_dir,
      num_branches=FLAGS.num_branches, max_trials=FLAGS.max_trials,
      algorithm=FLAGS.algorithm, mutation_probability=FLAGS.mutation_probability,
      top_k=FLAGS.top_k, population_size=FLAGS.population_size,
      tournament_size=FLAGS.tournament_size, eta=FLAGS.eta, num_rungs=FLAGS.num_rungs,
      prescreen=FLAGS.prescreen,
      seed_cells=tuple(FLAGS.seed_cells), max_madds=FLAGS.max_madds,
      max_params=FLAGS.max_params, num_best_cells=FLAGS.num_best_cells,
      num_workers=FLAGS.num_workers, seed=FLAGS.seed,
      max_consecutive_failed_trials=FLAGS.max_consecutive_failed_trials,
      cache_batch_size=FLAGS.cache_batch_size)


def rerank_config():
  from deeplab_dpc.search import rerank  # pylint: disable=g-import-not-at-top
  eval_crop = (_crop_size(FLAGS.rerank_eval_crop_size, 'rerank_eval_crop_size')
               if FLAGS.rerank_eval_crop_size else None)
  decoder = multi_ints(FLAGS.rerank_decoder_output_stride, 'rerank_decoder_output_stride')
  return rerank.RerankConfig(
      search_dir=FLAGS.search_dir, dataset=model_flags.dataset_name(_DEFAULT_DATASET),
      dataset_dir=FLAGS.dataset_dir,
      model_variant=FLAGS.model_variant, depth_multiplier=FLAGS.depth_multiplier,
      divisible_by=FLAGS.divisible_by, output_stride=FLAGS.output_stride,
      train_crop_size=_crop_size(FLAGS.train_crop_size, 'train_crop_size'),
      tf_initial_checkpoint=FLAGS.tf_initial_checkpoint, top_k=FLAGS.rerank_top_k,
      training_number_of_steps=FLAGS.rerank_training_number_of_steps,
      train_batch_size=FLAGS.rerank_train_batch_size,
      base_learning_rate=FLAGS.rerank_base_learning_rate, train_split=FLAGS.train_split,
      eval_split=FLAGS.eval_split, eval_crop_size=eval_crop,
      decoder_output_stride=tuple(decoder) if decoder else None, seed=FLAGS.seed,
      batch_norm_decay=FLAGS.rerank_batch_norm_decay,
      min_scale_factor=FLAGS.min_scale_factor, max_scale_factor=FLAGS.max_scale_factor,
      scale_factor_step_size=FLAGS.scale_factor_step_size, label_weights=label_weights())


def fidelity_config():
  """The `FidelityConfig` of the flags (work folder `<search_dir>/fidelity`)."""
  from deeplab_dpc.search import fidelity  # pylint: disable=g-import-not-at-top
  return fidelity.FidelityConfig(
      work_dir=os.path.join(FLAGS.search_dir, 'fidelity'), num_cells=FLAGS.fidelity_num_cells,
      cell_seed=FLAGS.fidelity_cell_seed, num_branches=FLAGS.num_branches,
      noise_cells=FLAGS.fidelity_noise_cells, noise_seeds=FLAGS.fidelity_noise_seeds,
      seed=FLAGS.seed)


def main(argv):
  if len(argv) > 1:
    raise ValueError(f'unexpected arguments: {" ".join(argv[1:])}')
  from deeplab_dpc.search import study  # pylint: disable=g-import-not-at-top
  if FLAGS.mode == 'rerank':
    from deeplab_dpc.search import rerank  # pylint: disable=g-import-not-at-top
    if not FLAGS.search_dir or not FLAGS.dataset_dir:
      raise ValueError('--search_dir and --dataset_dir are required')
    report = rerank.run_rerank(rerank_config())
    print(json.dumps({k: report[k] for k in ('spearman_rho', 'winner', 'proxy_winner')},
                     indent=1))
    return 0
  config = search_config()
  config.validate()
  if FLAGS.mode == 'fidelity':
    from deeplab_dpc.search import fidelity  # pylint: disable=g-import-not-at-top
    report = fidelity.run_search_fidelity(config, rerank_config(), fidelity_config())
    print(fidelity.format_report(report))
    print(json.dumps({'report': os.path.join(fidelity_config().work_dir, fidelity.REPORT_FILE),
                      'plot': report['plot']}))
    return 0
  if FLAGS.mode == 'cache':
    manifest = study.ensure_cache(config)
    print(json.dumps({'cache_dir': config.resolved_cache_dir,
                      'feature_shape': manifest['feature_shape'],
                      'examples': {r: s['examples'] for r, s in manifest['splits'].items()}}))
    return 0
  try:
    summary = study.run_search(config)
  except RuntimeError as e:
    print(f'error: {e}', file=sys.stderr)
    return 1
  logging.info('Search summary: %s', summary)
  print(json.dumps(summary))
  if summary.get('stop_reason') and summary['completed'] == 0:
    return 1
  return 0


def run():
  """`deeplab-search` (and `python search.py`)."""
  os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
  cli.run(main, __name__)


if __name__ == '__main__':
  run()
