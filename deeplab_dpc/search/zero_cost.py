"""Zero-cost scores: a candidate cell scored from one minibatch, before any training.

Abdelfattah et al. (ICLR 2021, "Zero-Cost Proxies for Lightweight NAS") score an
untrained network from a single minibatch and use the score to pre-screen
candidates: only the best fraction of each drawn batch is trained. Here the network
is the proxy task's (the cell and the logits on cached features, initialised with the
proxy task's seed), and the minibatch is the first `batch_size` cached training
examples, so every candidate is scored on the same data from the same initialiser.

* `grad_norm`: the sum over weight tensors of the L2 norm of the loss's gradient.
* `synflow` (Tanaka et al., NeurIPS 2020): with every weight replaced by its absolute
  value and an all-ones input, the sum over weights of |w * dR/dw|, R the sum of
  the logits (no data, no labels).
* `jacob_cov` (Mellor et al., ICML 2021): how differently the untrained network reacts
  to the minibatch's examples: from the correlation matrix of the per-example input
  gradients of the summed logits, -sum(log(lambda + k) + 1 / (lambda + k)) over its
  eigenvalues lambda, k = 1e-5.

Higher is better for all three. `--prescreen=NAME:FRACTION` (search.py) uses one of
them in the oracle; each candidate's score is kept in `trials.jsonl`.
"""

from typing import Any

import numpy as np
import tensorflow as tf

from deeplab_dpc.search import feature_cache
from deeplab_dpc.search import proxy_task
from deeplab_dpc.training import losses

SCORES = ('synflow', 'grad_norm', 'jacob_cov')
_JACOB_COV_K = 1e-5


def parse_prescreen(text: str) -> tuple[str, float] | None:
  """`NAME:FRACTION` -> (name, fraction); '' -> None.

  Raises:
    ValueError: naming `--prescreen`, for an unknown score or a fraction outside (0, 1].
  """
  if not text:
    return None
  name, sep, fraction = text.partition(':')
  if name not in SCORES:
    raise ValueError(f'--prescreen: unknown zero-cost score {name!r}; expected one of '
                     f'{", ".join(SCORES)} (as NAME:FRACTION, e.g. synflow:0.25)')
  try:
    value = float(fraction) if sep else float('nan')
  except ValueError:
    value = float('nan')
  if not 0.0 < value <= 1.0:
    raise ValueError(f'--prescreen={text}: FRACTION must be a number in (0, 1], e.g. '
                     f'{name}:0.25 (the best quarter of each drawn batch is trained)')
  return name, value


def minibatch(cache_dir: str, manifest: dict, batch_size: int):
  """The first `batch_size` cached training examples: (features float32, labels)."""
  data = feature_cache.load_split(cache_dir, manifest, feature_cache.TRAIN)
  features, labels = next(iter(data.batch(batch_size)))
  return tf.cast(features, tf.float32), labels


def score_cell(name: str, cell: Any, features, labels, manifest: dict,
               config: proxy_task.ProxyConfig) -> float:
  """The zero-cost score `name` of `cell` on one minibatch (higher is better)."""
  if name not in SCORES:
    raise ValueError(f'unknown zero-cost score {name!r}; expected one of {", ".join(SCORES)}')
  tf.keras.utils.set_random_seed(config.seed)
  model = proxy_task.build_proxy_model(cell, manifest['num_classes'],
                                       manifest['config']['output_stride'],
                                       config.weight_decay, config.batch_norm_decay)
  model(features[:1], training=False)
  if name == 'grad_norm':
    return _grad_norm(model, features, labels, manifest, config)
  if name == 'synflow':
    return _synflow(model, features)
  return _jacob_cov(model, features)


def _grad_norm(model, features, labels, manifest, config) -> float:
  with tf.GradientTape() as tape:
    logits = model(features, training=True)
    loss = losses.softmax_cross_entropy(logits, labels, manifest['num_classes'],
                                        ignore_label=manifest['ignore_label'],
                                        upsample_logits=config.upsample_logits)
  grads = tape.gradient(loss, model.trainable_variables)
  return float(sum(tf.norm(g) for g in grads if g is not None))


def _synflow(model, features) -> float:
  variables = model.trainable_variables
  saved = [v.numpy() for v in variables]
  try:
    for v in variables:
      v.assign(tf.abs(v))
    ones = tf.ones_like(features[:1])
    with tf.GradientTape() as tape:
      total = tf.reduce_sum(tf.cast(model(ones, training=False), tf.float64))
    grads = tape.gradient(total, variables)
    return float(sum(tf.reduce_sum(tf.abs(tf.cast(v, tf.float64) * tf.cast(g, tf.float64)))
                     for v, g in zip(variables, grads) if g is not None))
  finally:
    for v, value in zip(variables, saved):
      v.assign(value)


def _jacob_cov(model, features) -> float:
  with tf.GradientTape() as tape:
    tape.watch(features)
    total = tf.reduce_sum(model(features, training=False))
  jacobians = tape.gradient(total, features).numpy().reshape(features.shape[0], -1)
  jacobians = jacobians.astype(np.float64)
  jacobians -= jacobians.mean(axis=1, keepdims=True)
  norms = np.linalg.norm(jacobians, axis=1, keepdims=True)
  # A cell whose output ignores its input has no correlation to speak of: worst score.
  if not np.all(norms > 0):
    return float('-inf')
  correlation = (jacobians / norms) @ (jacobians / norms).T
  eigenvalues = np.linalg.eigvalsh(correlation)
  eigenvalues = np.clip(eigenvalues, 0.0, None)
  return float(-np.sum(np.log(eigenvalues + _JACOB_COV_K) + 1.0 / (eigenvalues + _JACOB_COV_K)))
