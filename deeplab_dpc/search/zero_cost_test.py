"""Zero-cost scores: finite, deterministic, cell-dependent; the pre-screen flag."""

import math

import numpy as np
import pytest

from deeplab_dpc.search import proxy_task
from deeplab_dpc.search import testing
from deeplab_dpc.search import zero_cost

_OTHER_CELL = [
    {'op': 'conv', 'kernel': 3, 'rate': [3, 1], 'input': -1},
    {'op': 'pyramid_pooling', 'grid_size': [2, 2], 'input': -1},
    {'op': 'conv', 'kernel': 1, 'input': 1},
]


@pytest.fixture(scope='module')
def cache(tmp_path_factory):
  cache_dir = str(tmp_path_factory.mktemp('cache'))
  manifest = testing.write_synthetic_cache(cache_dir, feature_shape=(5, 5, 8))
  features, labels = zero_cost.minibatch(cache_dir, manifest, 4)
  return manifest, features, labels


@pytest.mark.parametrize('name', zero_cost.SCORES)
def test_scores_are_finite_deterministic_and_tell_cells_apart(cache, name):
  manifest, features, labels = cache
  config = proxy_task.ProxyConfig(batch_norm_decay=0.9)
  first = zero_cost.score_cell(name, testing.SIMPLE_CELL, features, labels, manifest, config)
  again = zero_cost.score_cell(name, testing.SIMPLE_CELL, features, labels, manifest, config)
  other = zero_cost.score_cell(name, _OTHER_CELL, features, labels, manifest, config)
  assert math.isfinite(first) and math.isfinite(other)
  assert first == pytest.approx(again, rel=1e-6)
  assert first != pytest.approx(other, rel=1e-3)


def test_synflow_is_positive_and_leaves_the_weights_alone(cache, monkeypatch):
  manifest, features, labels = cache
  built = []
  real = proxy_task.build_proxy_model

  def keep(*args, **kwargs):
    built.append(real(*args, **kwargs))
    return built[-1]

  monkeypatch.setattr(proxy_task, 'build_proxy_model', keep)
  config = proxy_task.ProxyConfig()
  score = zero_cost.score_cell('synflow', testing.SIMPLE_CELL, features, labels, manifest,
                               config)
  assert score > 0
  # Signed initial weights come back after the |w| pass.
  assert any((v.numpy() < 0).any() for v in built[0].trainable_variables)


def test_minibatch_is_the_first_cached_training_examples(cache):
  manifest, features, labels = cache
  assert features.dtype.name == 'float32' and tuple(features.shape) == (4, 5, 5, 8)
  # The synthetic cache labels example i with class i % 3, over the whole crop.
  assert [int(np.unique(labels[i])[0]) for i in range(4)] == [0, 1, 2, 0]
  assert manifest['num_classes'] == 3


def test_parse_prescreen():
  assert zero_cost.parse_prescreen('') is None
  assert zero_cost.parse_prescreen('synflow:0.25') == ('synflow', 0.25)
  assert zero_cost.parse_prescreen('jacob_cov:1') == ('jacob_cov', 1.0)
  with pytest.raises(ValueError, match='--prescreen: unknown zero-cost score .snip.'):
    zero_cost.parse_prescreen('snip:0.5')
  for bad in ('synflow', 'synflow:0', 'synflow:1.5', 'synflow:half', 'synflow:-0.1'):
    with pytest.raises(ValueError, match=r'--prescreen=.*FRACTION must be a number in \(0, 1\]'):
      zero_cost.parse_prescreen(bad)
