"""One training step: the original's loss, its gradients, the multipliers, one update.

The step every training runs: train.py's loop (`trainer.make_step_fn`, which adds
the gradient multipliers and pixel counts), re-ranking, the golden step tool and
the proxy task (which trains a cell on cached features with this same step).
"""

import dataclasses
from typing import Any, Callable

import tensorflow as tf

from deeplab_dpc import checkpoints
from deeplab_dpc import constants
from deeplab_dpc.training import losses


@dataclasses.dataclass(frozen=True)
class LossSettings:
  """The original loss's settings (`losses.softmax_cross_entropy`).

  Attributes:
    num_classes: Classes of the logits.
    ignore_label: Pixels with this label do not count.
    label_weights: One weight for all classes or one per class.
    upsample_logits: Logits resized to the labels (the original's default), or
      the labels to the logits.
    top_k_percent_pixels: Fraction of the hardest pixels that count.
    hard_example_mining_step: Steps over which that fraction is annealed from 1.
  """
  num_classes: int
  ignore_label: int = constants.IGNORE_LABEL
  label_weights: Any = 1.0
  upsample_logits: bool = True
  top_k_percent_pixels: float = 1.0
  hard_example_mining_step: int = 0


def make_train_step(model, optimizer, loss: LossSettings,
                    multipliers: dict[str, float] | None = None, num_replicas: int = 1,
                    return_gradients: bool = False) -> Callable[[Any, Any], dict]:
  """The training step on one replica, as a plain function (wrap it in a tf.function).

  The original's softmax cross-entropy plus the layers' L2 terms (`model.losses`),
  the gradients of that total, each scaled by its variable's multiplier, and one
  optimizer update; batch norm's moving averages are updated inside the forward
  pass.

  Args:
    model: A built Keras model (images or cached features -> logits).
    optimizer: Its optimizer, built on `model.trainable_variables`.
    loss: The loss settings.
    multipliers: {original variable name: gradient multiplier} (the original's
      `get_model_gradient_multipliers`); None or empty: none.
    num_replicas: Replicas in sync; each replica's loss is divided by it so that
      summing over replicas averages.
    return_gradients: Also return `gradients`, {original variable name: d total
      loss / d variable} before the multipliers (for parity checks).

  Returns:
    `step(images, labels) -> dict` of `total_loss`, `segmentation_loss`,
    `regularization_loss` (each divided by `num_replicas`) and `logits`.
  """
  variables = model.trainable_variables
  multipliers = multipliers or {}
  names = ([checkpoints.original_name(v.path) for v in variables]
           if multipliers or return_gradients else None)
  scales = [multipliers.get(name) for name in names] if multipliers else [None] * len(variables)
  global_step = optimizer.iterations

  def step(images, labels):
    with tf.GradientTape() as tape:
      logits = model(images, training=True)
      segmentation = losses.softmax_cross_entropy(
          logits, labels, loss.num_classes, loss.ignore_label, loss.label_weights,
          loss.upsample_logits, loss.top_k_percent_pixels, loss.hard_example_mining_step,
          global_step)
      regularization = tf.add_n([tf.cast(l, tf.float32) for l in model.losses]) \
          if model.losses else tf.constant(0.0)
      total = (segmentation + regularization) / num_replicas
      scaled = optimizer.scale_loss(total)
    raw_grads = tape.gradient(scaled, variables)
    grads = [g if scale is None else g * scale for g, scale in zip(raw_grads, scales)]
    optimizer.apply_gradients(zip(grads, variables))
    out = {'total_loss': total, 'segmentation_loss': segmentation / num_replicas,
           'regularization_loss': regularization / num_replicas, 'logits': logits}
    if return_gradients:
      out['gradients'] = dict(zip(names, raw_grads))
    return out

  return step
