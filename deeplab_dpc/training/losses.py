"""The original training loss (`train_utils.add_softmax_cross_entropy_loss_for_each_scale`).

Softmax cross-entropy over pixels, the ignore label excluded, optional class
weights, and hard example mining (only the top-k percent of pixel losses count,
that percentage annealed over `hard_example_mining_step` steps).
"""

import tensorflow as tf

from deeplab_dpc import constants
from deeplab_dpc import layers


def label_weight_mask(labels, num_classes: int, ignore_label: int = constants.IGNORE_LABEL,
                      label_weights=1.0):
  """Per-pixel loss weights: the class weight, 0 on ignored pixels.

  Args:
    labels: int32 [N] labels.
    num_classes: Number of classes.
    ignore_label: Label with weight 0.
    label_weights: A float for all classes or a list of one weight per class.

  Raises:
    ValueError: naming `label_weights` if the list length is not num_classes.
  """
  if isinstance(label_weights, (int, float)):
    label_weights = [float(label_weights)] * num_classes
  label_weights = list(label_weights)
  if len(label_weights) != num_classes:
    raise ValueError(f'--label_weights needs {num_classes} values (one per class), '
                     f'got {len(label_weights)}')
  # one_hot of the ignore label (>= num_classes) is all zeros, hence weight 0.
  weights = tf.einsum('...y,y->...', tf.one_hot(labels, num_classes, dtype=tf.float32),
                      tf.constant(label_weights, tf.float32))
  return weights * tf.cast(tf.not_equal(labels, ignore_label), tf.float32)


def softmax_cross_entropy(logits, labels, num_classes: int,
                          ignore_label: int = constants.IGNORE_LABEL, label_weights=1.0,
                          upsample_logits: bool = True, top_k_percent_pixels: float = 1.0,
                          hard_example_mining_step: int = 0, step=0):
  """The loss of one replica's batch, a scalar.

  Args:
    logits: float [B, h, w, C] at the model's output stride.
    labels: int [B, H, W, 1] at the crop size.
    num_classes: C.
    ignore_label: Pixels with this label do not count.
    label_weights: Class weights (float or list).
    upsample_logits: Resize the logits to the labels (align_corners) instead of
      the labels to the logits (nearest neighbour), as the original flag.
    top_k_percent_pixels: Fraction of the hardest pixels that count (1.0: all).
    hard_example_mining_step: Steps over which that fraction is annealed from 1.
    step: Current global step (for the annealing).

  Returns:
    Sum of the counted weighted pixel losses divided by the number of counted
    pixels (0 when none count).
  """
  labels = tf.cast(labels, tf.int32)
  if upsample_logits:
    logits = layers.resize_bilinear(tf.cast(logits, tf.float32), labels.shape[1:3])
  else:
    labels = tf.raw_ops.ResizeNearestNeighbor(
        images=labels, size=list(layers.static_spatial_size(logits)), align_corners=True,
        half_pixel_centers=False)
  labels = tf.reshape(labels, [-1])
  logits = tf.reshape(tf.cast(logits, tf.float32), [-1, num_classes])
  weights = label_weight_mask(labels, num_classes, ignore_label, label_weights)
  one_hot = tf.one_hot(labels, num_classes, dtype=tf.float32)
  pixel_losses = tf.nn.softmax_cross_entropy_with_logits(
      labels=tf.stop_gradient(one_hot), logits=logits) * weights
  if top_k_percent_pixels == 1.0:
    num_present = tf.reduce_sum(tf.cast(tf.not_equal(labels, ignore_label), tf.float32))
    return tf.math.divide_no_nan(tf.reduce_sum(pixel_losses), num_present)
  num_pixels = tf.cast(tf.shape(logits)[0], tf.float32)
  if hard_example_mining_step == 0:
    fraction = tf.constant(top_k_percent_pixels, tf.float32)
  else:
    ratio = tf.minimum(1.0, tf.cast(step, tf.float32) / hard_example_mining_step)
    fraction = ratio * top_k_percent_pixels + (1.0 - ratio)
  top_k = tf.cast(fraction * num_pixels, tf.int32)
  top_losses, _ = tf.nn.top_k(pixel_losses, k=top_k, sorted=True)
  num_present = tf.reduce_sum(tf.cast(tf.not_equal(top_losses, 0.0), tf.float32))
  return tf.math.divide_no_nan(tf.reduce_sum(top_losses), num_present)
