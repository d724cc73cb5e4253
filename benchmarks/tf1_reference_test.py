"""The TF1 reference graph is the original's graph: names, ops and golden outputs.

Only then is timing it a fair stand-in for the original release.
"""

import copy

import numpy as np
import pytest
import tensorflow as tf

from benchmarks import tf1_reference
from deeplab_dpc.testing import golden
from deeplab_dpc.testing import recipe_checkpoint

CASE = 'xception65_dpc_os16'
_FEATURES = ('backbone_features', 'decoder_low_level_features', 'dpc_branch0', 'dpc_branch1',
             'dpc_branch2', 'dpc_branch3', 'dpc_branch4', 'head_output', 'decoder_output')
_LOGITS = ('logits', 'merged_logits', 'logits_upsampled')


@pytest.fixture(scope='module')
def built():
  return tf1_reference.build_inference_graph(golden.config(CASE)['model_options'], batch=1)


@pytest.fixture(scope='module')
def results(built, tmp_path_factory):
  graph, images, outputs, saver = built
  checkpoint = golden.write_checkpoint(CASE, str(tmp_path_factory.mktemp('ckpt')))
  reference = golden.outputs(CASE)
  with tf.compat.v1.Session(graph=graph) as session:
    tf1_reference.restore(session, saver, checkpoint)
    ours = session.run(outputs, {images: reference['input_images'].astype(np.float32)})
  return ours, reference


def _config(**changes):
  config = copy.deepcopy(golden.config(CASE)['model_options'])
  config.update(changes)
  return config


def test_variables_are_the_manifest(built):
  graph = built[0]
  with graph.as_default():
    ours = [(v.op.name, tuple(v.shape.as_list())) for v in tf.compat.v1.global_variables()]
  manifest = recipe_checkpoint.load_manifest(f'{golden.case_dir(CASE)}/manifest.json')
  expected = [(v['name'], tuple(v['shape'])) for v in manifest]
  assert set(ours) == set(expected)
  assert ours == expected  # Even tf.global_variables() order is the original's.


def test_tensors_have_the_original_names(built):
  # Same scopes and op order as the original: every golden tensor name resolves
  # to the tensor we return for that array.
  graph, _, outputs, _ = built
  for key, name in golden.config(CASE)['tensors'].items():
    assert graph.get_tensor_by_name(name) is outputs[key], key


def test_graph_uses_the_original_op_vocabulary(built):
  graph = built[0]
  types = [op.type for op in graph.get_operations()]
  # Unfolded batch norms, split separable convs, atrous via space-to-batch,
  # fixed padding, legacy align-corners resizes.
  for op_type in ('FusedBatchNormV3', 'DepthwiseConv2dNative', 'Conv2D', 'SpaceToBatchND',
                  'BatchToSpaceND', 'Pad', 'ResizeBilinear', 'BiasAdd', 'ArgMax'):
    assert op_type in types, op_type
  # One BN per conv and depthwise conv except the logits conv: nothing is folded.
  assert types.count('FusedBatchNormV3') == types.count('Conv2D') - 1 + types.count(
      'DepthwiseConv2dNative')
  for op in graph.get_operations():
    if op.type == 'ResizeBilinear':
      assert op.get_attr('align_corners') and not op.get_attr('half_pixel_centers')


def test_outputs_match_golden(results):
  ours, reference = results
  for name in _FEATURES:
    # Same ops as the original: only kernel rounding differs (~3e-6 x scale).
    assert golden.check_features(name, ours[name], reference[name]) < 2e-5, name
  for name in _LOGITS:
    assert golden.check_logits(name, ours[name], reference[name]) < 2e-5, name
  golden.check_predictions(ours['predictions'], reference['predictions'],
                           reference['logits_upsampled'])


@pytest.mark.parametrize('output_stride, backbone, rates', [
    (8, (17, 21), [2, 4]),   # entry_flow/block3 loses its stride.
    (16, (9, 11), [1, 2]),   # exit_flow/block1 loses its stride.
])
def test_output_stride(output_stride, backbone, rates):
  graph, _, outputs, _ = tf1_reference.build_inference_graph(
      _config(output_stride=output_stride), batch=2)
  assert outputs['backbone_features'].shape.as_list() == [2, *backbone, 2048]
  assert outputs['decoder_output'].shape.as_list() == [2, 33, 41, 256]
  assert outputs['logits_upsampled'].shape.as_list() == [2, 129, 161, 19]
  # Middle flow and exit_flow/block2 run atrous at the walk's rates.
  for scope, rate in zip(('xception_65/middle_flow/block1/unit_1', 'xception_65/exit_flow/block2'
                          '/unit_1'), rates):
    op = graph.get_operation_by_name(
        f'{scope}/xception_module/separable_conv1_depthwise/depthwise')
    block = op.inputs[0].op
    if rate == 1:
      assert op.type == 'DepthwiseConv2dNative'
    else:
      assert block.type == 'SpaceToBatchND'
      np.testing.assert_array_equal(tf.get_static_value(block.inputs[1]), [rate, rate])


def test_output_stride_32_is_rejected_by_the_dpc():
  with pytest.raises(ValueError, match='conv_rate_multiplier'):
    tf1_reference.build_inference_graph(_config(output_stride=32), batch=1)


@pytest.mark.parametrize('variant, low_level', [
    ('xception_41', 'xception_41/entry_flow/block2/unit_1'),
    ('xception_71', 'xception_71/entry_flow/block3/unit_1'),
])
def test_other_variants(variant, low_level):
  graph, _, outputs, _ = tf1_reference.build_inference_graph(
      _config(model_variant=variant), batch=1)
  assert outputs['backbone_features'].shape.as_list() == [1, 9, 11, 2048]
  assert outputs['decoder_low_level_features'].name == (
      f'{low_level}/xception_module/separable_conv2_pointwise/BatchNorm/FusedBatchNormV3:0')
  assert outputs['decoder_low_level_features'].shape.as_list() == [1, 33, 41, 256]
  units = 8 if variant == 'xception_41' else 16
  with graph.as_default():
    names = {v.op.name for v in tf.compat.v1.global_variables()}
  assert f'{variant}/middle_flow/block1/unit_{units}/xception_module/shortcut/weights' not in names
  assert (f'{variant}/middle_flow/block1/unit_{units}/xception_module/'
          'separable_conv3_pointwise/weights') in names
  assert (f'{variant}/middle_flow/block1/unit_{units + 1}/xception_module/'
          'separable_conv3_pointwise/weights') not in names


def test_pyramid_pooling_branch():
  cell = [{'op': 'pyramid_pooling', 'input': -1, 'grid_size': [1, 2]},
          {'op': 'conv', 'kernel': 1, 'input': 0}]
  graph, _, outputs, _ = tf1_reference.build_inference_graph(
      _config(dense_prediction_cell_config=cell), batch=1)
  # Kernel from the crop: scale_dimension(129, 1/16) = 9, scale_dimension(161, 1/32) = 6;
  # stride 1 VALID, then a 1x1 conv and a resize back to 9x11.
  (pool,) = [op for op in graph.get_operations() if op.type == 'AvgPool']
  assert pool.get_attr('ksize') == [1, 9, 6, 1] and pool.get_attr('strides') == [1, 1, 1, 1]
  assert outputs['dpc_branch0'].shape.as_list() == [1, 9, 11, 256]
  assert outputs['dpc_branch0'].op.type == 'ResizeBilinear'
  with graph.as_default():
    names = {v.op.name for v in tf.compat.v1.global_variables()}
  assert {'meta_architecture/branch0/weights', 'meta_architecture/branch1/weights',
          'meta_architecture/branch0/BatchNorm/gamma'} <= names


def test_run_latency(built, tmp_path):
  graph, images, outputs, saver = built
  # Written before the session: a Session context makes its graph the default one.
  checkpoint = golden.write_checkpoint(CASE, str(tmp_path))
  with tf.compat.v1.Session(graph=graph) as session:
    tf1_reference.restore(session, saver, checkpoint)
    seconds = tf1_reference.run_latency(session, outputs['predictions'], images,
                                        np.zeros([1, 129, 161, 3], np.float32), repeats=1)
  assert seconds > 0
