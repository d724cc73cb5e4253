"""One step of the original's TF1 training graph equals one step of ours.

Same weights, same batch, same dropout keep mask: the losses agree and so do the
updates of variables in every part of the model (backbone, DPC, decoder, logits,
batch-norm moving statistics), which makes timing the two a like-for-like comparison.
"""

import os

import numpy as np
import pytest
import tensorflow as tf

from benchmarks import training_vs_original as tvo
from deeplab_dpc.testing import train_step_golden

_VARIABLES = (
    'xception_65/entry_flow/conv1_1/weights',
    'xception_65/entry_flow/conv1_1/BatchNorm/moving_mean',
    'xception_65/middle_flow/block1/unit_8/xception_module/separable_conv2_depthwise/'
    'depthwise_weights',
    'xception_65/exit_flow/block2/unit_1/xception_module/separable_conv3_pointwise/'
    'BatchNorm/moving_variance',
    'meta_architecture/branch1_pointwise/weights',
    'meta_architecture/concat_projection/BatchNorm/beta',
    'decoder/decoder_conv1_pointwise/weights',
    'logits/semantic/weights',
    'logits/semantic/biases',
)


@pytest.fixture(scope='module')
def steps(tmp_path_factory):
  options = tvo.model_options('xception_65', (33, 33), num_classes=4)
  images, labels = tvo.batch(options, 2)
  original = tvo.Original(options, 2, inject_keep_mask=True)
  mask = np.random.default_rng(1).random(original.graph.keep_mask.shape.as_list()) < 0.9
  before = original.variables()
  prefix = original.save(os.path.join(str(tmp_path_factory.mktemp('ckpt')), 'model.ckpt'))
  ours = tvo.Ours(options, prefix, 2)
  train_step_golden.inject_keep_masks(ours.model.head.dropout, mask.shape).assign(mask)
  return {'before': before,
          'original': (original.step(images, labels, mask), original.variables()),
          'ours': (ours.step(tf.constant(images), tf.constant(labels)), ours.variables())}


def test_same_losses(steps):
  original, ours = steps['original'][0], steps['ours'][0]
  np.testing.assert_allclose(ours['total_loss'], original['total_loss'], rtol=1e-5)
  np.testing.assert_allclose(ours['segmentation_loss'], original['cross_entropy_loss'],
                             rtol=1e-5)
  np.testing.assert_allclose(ours['regularization_loss'], original['regularization_loss'],
                             rtol=1e-5)


@pytest.mark.parametrize('name', _VARIABLES)
def test_same_update(steps, name):
  before = steps['before'][name]
  original = steps['original'][1][name] - before
  ours = steps['ours'][1][name] - before
  assert np.abs(original).max() > 0, f'{name} did not move in the original'
  # The updates (not the values, which hide them) agree to float32 noise.
  np.testing.assert_allclose(ours, original, rtol=2e-3, atol=2e-3 * np.abs(original).max())
