"""Proxy task: learns a learnable cache, is deterministic, reports divergence."""

import pytest

from deeplab_dpc.search import proxy_task
from deeplab_dpc.search import testing


@pytest.fixture(scope='module')
def cache(tmp_path_factory):
  cache_dir = str(tmp_path_factory.mktemp('cache'))
  return cache_dir, testing.write_synthetic_cache(cache_dir)


def test_learns_a_trivially_learnable_cache(cache):
  cache_dir, manifest = cache
  short = proxy_task.run_proxy_task(testing.SIMPLE_CELL, cache_dir, manifest,
                                    proxy_task.ProxyConfig(training_number_of_steps=1,
                                                           base_learning_rate=0.05))
  long = proxy_task.run_proxy_task(testing.SIMPLE_CELL, cache_dir, manifest,
                                   proxy_task.ProxyConfig(training_number_of_steps=60,
                                                          base_learning_rate=0.05))
  assert long['final_loss'] < short['final_loss'] * 0.5
  assert long['miou'] > 0.9
  assert 0.0 <= short['miou'] <= 1.0
  assert long['steps'] == 60 and long['train_seconds'] > 0


def test_downsampled_labels_also_learn_and_differ_from_upsampled_logits(cache):
  cache_dir, manifest = cache
  results = [proxy_task.run_proxy_task(
      testing.SIMPLE_CELL, cache_dir, manifest,
      proxy_task.ProxyConfig(training_number_of_steps=60, base_learning_rate=0.05,
                             upsample_logits=upsample)) for upsample in (True, False)]
  assert results[1]['miou'] > 0.9  # Scored at full label resolution either way.
  assert results[0]['final_loss'] != pytest.approx(results[1]['final_loss'], rel=1e-3)


def test_deterministic_with_a_seed(cache):
  cache_dir, manifest = cache
  config = proxy_task.ProxyConfig(training_number_of_steps=8, seed=3)
  first = proxy_task.run_proxy_task(testing.SIMPLE_CELL, cache_dir, manifest, config)
  second = proxy_task.run_proxy_task(testing.SIMPLE_CELL, cache_dir, manifest, config)
  assert first['final_loss'] == pytest.approx(second['final_loss'], rel=1e-5)
  assert first['miou'] == second['miou']


def test_divergence_is_reported_with_the_step(cache):
  cache_dir, manifest = cache
  with pytest.raises(proxy_task.ProxyTaskDiverged, match=r'diverged: loss is .* at step \d+'):
    proxy_task.run_proxy_task(testing.SIMPLE_CELL, cache_dir, manifest,
                              proxy_task.ProxyConfig(training_number_of_steps=30,
                                                     base_learning_rate=1e8))


def test_pyramid_pooling_kernels_follow_the_cached_feature_size(cache):
  # Grid 8 on 3x3 features pools with a 1x1 kernel; the cell must still build and run.
  cache_dir, manifest = cache
  cell = [{'op': 'pyramid_pooling', 'grid_size': [8, 8], 'input': -1},
          {'op': 'pyramid_pooling', 'grid_size': [1, 2], 'input': 0}]
  result = proxy_task.run_proxy_task(cell, cache_dir, manifest,
                                     proxy_task.ProxyConfig(training_number_of_steps=2))
  assert 0.0 <= result['miou'] <= 1.0


def test_bad_config():
  with pytest.raises(ValueError, match='--proxy_training_number_of_steps'):
    proxy_task.ProxyConfig(training_number_of_steps=0).validate()
  with pytest.raises(ValueError, match='--proxy_base_learning_rate'):
    proxy_task.ProxyConfig(base_learning_rate=0).validate()
