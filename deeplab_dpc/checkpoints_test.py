"""Checkpoint import: original TF1 name-based checkpoints (all modes) and ours."""

import os

import numpy as np
import pytest

from deeplab_dpc import checkpoints
from deeplab_dpc import model as model_lib
from deeplab_dpc import options as options_lib
from deeplab_dpc.testing import recipe_checkpoint


def _options(**changes):
  base = dict(num_classes=5, model_variant='xception_41', crop_size=(33, 33),
              output_stride=16, atrous_rates=(6,), decoder_output_stride=(4,))
  base.update(changes)
  return options_lib.ModelOptions.create(**base)


@pytest.fixture(scope='module')
def model():
  return model_lib.build_model(_options())


def _recipe_of(model, drop=(), extra=None, reshape=None):
  """Original-named recipe tensors for `model`'s variables, with edits."""
  tensors = {name: recipe_checkpoint.recipe_value(name, v.shape)
             for name, v in checkpoints.original_names(model).items()
             if not name.startswith(tuple(drop))}
  for name, shape in (reshape or {}).items():
    tensors[name] = recipe_checkpoint.recipe_value(name, shape)
  tensors.update(extra or {})
  return tensors


def _write(tensors, directory):
  return recipe_checkpoint.write_tf1_checkpoint(tensors, os.path.join(directory, 'model.ckpt'))


def _values(model):
  return {name: np.array(v) for name, v in checkpoints.original_names(model).items()}


def test_original_names_drop_model_and_aspp_scopes(model):
  names = set(checkpoints.original_names(model))
  assert 'xception_41/entry_flow/conv1_1/weights' in names
  assert 'aspp1_depthwise/depthwise_weights' in names
  assert 'image_pooling/BatchNorm/moving_variance' in names
  assert 'logits/semantic/biases' in names
  assert not any(n.startswith(('deeplab/', 'aspp/')) for n in names)


def test_strict_load_assigns_every_variable(model, tmp_path):
  tensors = _recipe_of(model, extra={'global_step': np.array(7, np.int64),
                                     'logits/semantic/weights/Momentum': np.zeros((1, 1, 256, 5),
                                                                                  np.float32)})
  result = checkpoints.load_tf1_checkpoint(model, _write(tensors, str(tmp_path)))
  assert result['loaded'] == len(checkpoints.original_names(model))
  for name, value in _values(model).items():
    np.testing.assert_array_equal(value, tensors[name], err_msg=name)


def test_a_released_folder_without_state_file_resolves_to_its_checkpoint(model, tmp_path):
  # The released tarballs hold model.ckpt.* and a frozen graph, no `checkpoint` file.
  tensors = _recipe_of(model)
  _write(tensors, str(tmp_path))
  (tmp_path / 'frozen_inference_graph.pb').write_bytes(b'graph')
  result = checkpoints.load_checkpoint(model, str(tmp_path), flag='checkpoint_path')
  assert result['loaded'] == len(tensors)
  recipe_checkpoint.write_tf1_checkpoint(tensors, str(tmp_path / 'other.ckpt'))
  with pytest.raises(ValueError, match=r'--checkpoint_path: directory .* holds several '
                     r'checkpoints .*model\.ckpt, .*other\.ckpt'):
    checkpoints.load_checkpoint(model, str(tmp_path), flag='checkpoint_path')


def test_strict_lists_missing_unexpected_and_mismatched(model, tmp_path):
  tensors = _recipe_of(model, drop=('aspp0/',), extra={'foo/weights': np.zeros(3, np.float32)},
                       reshape={'logits/semantic/weights': (1, 1, 256, 21),
                                'logits/semantic/biases': (21,)})
  with pytest.raises(ValueError) as e:
    checkpoints.load_tf1_checkpoint(model, _write(tensors, str(tmp_path)))
  message = str(e.value)
  assert '--tf_initial_checkpoint' in message
  assert 'missing from the checkpoint: aspp0/BatchNorm/beta' in message
  assert 'in the checkpoint but not in the model: foo/weights' in message
  assert 'logits/semantic/weights: checkpoint [1, 1, 256, 21] vs model [1, 1, 256, 5]' in message
  assert 'initialize_last_layer=False' in message


def test_failed_load_changes_nothing(model, tmp_path):
  before = _values(model)
  tensors = _recipe_of(model, drop=('aspp0/',))
  with pytest.raises(ValueError):
    checkpoints.load_tf1_checkpoint(model, _write(tensors, str(tmp_path)))
  for name, value in _values(model).items():
    np.testing.assert_array_equal(value, before[name])


def test_other_variant_is_named(model, tmp_path):
  other = model_lib.build_model(_options(model_variant='xception_65'))
  with pytest.raises(ValueError, match='holds backbone xception_65: check --model_variant'):
    checkpoints.load_tf1_checkpoint(model, _write(_recipe_of(other), str(tmp_path)))


def test_backbone_mode_loads_an_imagenet_style_checkpoint(tmp_path):
  model = model_lib.build_model(_options())
  before = _values(model)
  # An ImageNet checkpoint: backbone plus a classifier, no DeepLab head.
  tensors = {n: t for n, t in _recipe_of(model).items() if n.startswith('xception_41/')}
  tensors['xception_41/logits/weights'] = np.zeros((1, 1, 2048, 1001), np.float32)
  result = checkpoints.load_tf1_checkpoint(model, _write(tensors, str(tmp_path)),
                                           mode=checkpoints.BACKBONE)
  after = _values(model)
  for name in after:
    if name.startswith('xception_41/'):
      np.testing.assert_array_equal(after[name], tensors[name])
    else:
      np.testing.assert_array_equal(after[name], before[name])
  assert 'aspp0/weights' in result['skipped']


def test_backbone_mode_still_requires_the_backbone(tmp_path):
  model = model_lib.build_model(_options())
  tensors = _recipe_of(model, drop=('xception_41/exit_flow/',))
  with pytest.raises(ValueError, match='missing from the checkpoint: xception_41/exit_flow'):
    checkpoints.load_tf1_checkpoint(model, _write(tensors, str(tmp_path)),
                                    mode=checkpoints.BACKBONE)


def test_exclude_logits_mode_for_a_new_class_count(tmp_path):
  source = model_lib.build_model(_options(num_classes=19))
  target = model_lib.build_model(_options(num_classes=5))
  before = _values(target)
  path = _write(_recipe_of(source), str(tmp_path))
  with pytest.raises(ValueError, match='initialize_last_layer'):
    checkpoints.load_tf1_checkpoint(target, path)
  checkpoints.load_tf1_checkpoint(target, path, mode=checkpoints.EXCLUDE_LOGITS)
  after = _values(target)
  np.testing.assert_array_equal(after['logits/semantic/weights'],
                                before['logits/semantic/weights'])
  assert not np.array_equal(after['aspp0/weights'], before['aspp0/weights'])


def test_path_errors(model, tmp_path):
  with pytest.raises(FileNotFoundError, match='--checkpoint_path: no checkpoint at'):
    checkpoints.load_checkpoint(model, str(tmp_path / 'nope.ckpt'), flag='checkpoint_path')
  with pytest.raises(FileNotFoundError, match='no checkpoint in directory'):
    checkpoints.load_checkpoint(model, str(tmp_path))
  junk = tmp_path / 'junk.ckpt'
  junk.write_text('not a checkpoint')
  with pytest.raises(ValueError, match='is not a checkpoint'):
    checkpoints.load_checkpoint(model, str(junk))
  (tmp_path / 'bad.ckpt.index').write_bytes(b'garbage')
  with pytest.raises(ValueError, match='not a readable checkpoint'):
    checkpoints.load_tf1_checkpoint(model, str(tmp_path / 'bad.ckpt'))
  with pytest.raises(ValueError, match='checkpoint mode'):
    checkpoints.load_checkpoint(model, str(junk), mode='everything')


def test_our_checkpoints_round_trip_in_every_mode(model, tmp_path):
  checkpoints.load_tf1_checkpoint(model, _write(_recipe_of(model), str(tmp_path)))
  saved = _values(model)
  prefix = checkpoints.save_checkpoint(model, str(tmp_path / 'ours' / 'ckpt'))
  assert checkpoints.is_object_based(prefix)

  fresh = model_lib.build_model(_options())
  checkpoints.load_checkpoint(fresh, prefix)
  for name, value in _values(fresh).items():
    np.testing.assert_array_equal(value, saved[name], err_msg=name)

  partial = model_lib.build_model(_options(num_classes=3))
  before = _values(partial)
  checkpoints.load_checkpoint(partial, prefix, mode=checkpoints.EXCLUDE_LOGITS)
  after = _values(partial)
  np.testing.assert_array_equal(after['aspp0/weights'], saved['aspp0/weights'])
  np.testing.assert_array_equal(after['logits/semantic/weights'],
                                before['logits/semantic/weights'])

  backbone_only = model_lib.build_model(_options())
  before = _values(backbone_only)
  checkpoints.load_checkpoint(backbone_only, prefix, mode=checkpoints.BACKBONE)
  after = _values(backbone_only)
  np.testing.assert_array_equal(after['xception_41/entry_flow/conv1_1/weights'],
                                saved['xception_41/entry_flow/conv1_1/weights'])
  np.testing.assert_array_equal(after['aspp0/weights'], before['aspp0/weights'])


def test_our_checkpoint_of_another_model_is_refused(model, tmp_path):
  prefix = checkpoints.save_checkpoint(model, str(tmp_path / 'ckpt'))
  other = model_lib.build_model(_options(atrous_rates=(6, 12)))
  with pytest.raises(ValueError, match=r'concat_projection/weights: checkpoint \[1, 1, 768, 256\] '
                     r'vs model \[1, 1, 1024, 256\]') as e:
    checkpoints.load_checkpoint(other, prefix)
  assert 'missing from the checkpoint: aspp2_depthwise/BatchNorm/beta' in str(e.value)
