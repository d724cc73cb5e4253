"""Tests for `deeplab_dpc.options`: parsing, validation messages, JSON round trip."""

import json

import pytest

from deeplab_dpc import cell as cell_lib
from deeplab_dpc.options import ModelOptions


def _create(**kwargs):
  kwargs.setdefault('num_classes', 19)
  return ModelOptions.create(**kwargs)


def test_defaults_are_the_original_flag_defaults():
  options = _create()
  assert options.model_variant == 'xception_65'
  assert options.crop_size == (513, 513)
  assert options.output_stride == 16
  assert options.atrous_rates is None and options.multi_grid is None
  assert options.decoder_output_stride is None
  assert options.image_pooling_stride == (1, 1)
  assert options.add_image_level_feature and options.aspp_with_batch_norm
  assert options.aspp_with_separable_conv and options.decoder_use_separable_conv
  assert options.logits_kernel_size == 1
  assert options.merge_method == 'max'
  assert not options.uses_dense_prediction_cell and options.cell is None


# --- validation messages name the flag ----------------------------------------


@pytest.mark.parametrize('kwargs, flag', [
    (dict(output_stride=12), '--output_stride'),
    (dict(output_stride=4), '--output_stride'),
    (dict(num_classes=0), '--num_classes'),
    (dict(num_classes=2.5), '--num_classes'),
    (dict(model_variant='resnet_v1_101'), '--model_variant'),
    (dict(crop_size='129'), '--crop_size'),
    (dict(crop_size=(0, 161)), '--crop_size'),
    (dict(crop_size=(129, 161, 3)), '--crop_size'),
    (dict(image_pooling_crop_size=(129,)), '--image_pooling_crop_size'),
    (dict(image_pooling_stride=(1, 0)), '--image_pooling_stride'),
    (dict(decoder_output_stride=(16,)), '--decoder_output_stride'),
    (dict(decoder_output_stride=(2,)), '--decoder_output_stride'),
    (dict(output_stride=8, decoder_output_stride=(8, 4)), '--decoder_output_stride'),
    (dict(multi_grid=(1, 2)), '--multi_grid'),
    (dict(multi_grid=(1, 2, 4), model_variant='mobilenet_v2'), '--multi_grid'),
    (dict(atrous_rates=(6, 0)), '--atrous_rates'),
    (dict(logits_kernel_size=3), '--logits_kernel_size'),
    (dict(logits_kernel_size=3, atrous_rates=(6, 12), aspp_with_batch_norm=True),
     '--logits_kernel_size'),
    (dict(merge_method='median'), '--merge_method'),
    (dict(depth_multiplier=0.0), '--depth_multiplier'),
    (dict(depth_multiplier=-0.5), '--depth_multiplier'),
])
def test_validation_error_names_the_flag(kwargs, flag):
  with pytest.raises(ValueError, match=flag):
    _create(**kwargs)


def test_bool_num_classes_rejected():
  with pytest.raises(ValueError, match='--num_classes'):
    _create(num_classes=True)


def test_unknown_option_is_named():
  with pytest.raises(ValueError, match='unknown model option.*output_strides'):
    _create(output_strides=16)
  with pytest.raises(ValueError, match='bogus_a, bogus_b'):
    _create(bogus_b=1, bogus_a=2)


def test_logits_kernel_size_allowed_without_aspp_batch_norm():
  options = _create(logits_kernel_size=3, atrous_rates=(6, 12), aspp_with_batch_norm=False)
  assert options.logits_kernel_size == 3


def test_valid_decoder_strides():
  assert _create(decoder_output_stride=(4,)).decoder_output_stride == (4,)
  assert _create(decoder_output_stride='8,4').decoder_output_stride == (8, 4)
  assert _create(output_stride=32, decoder_output_stride=(16, 8, 4)).decoder_output_stride == (
      16, 8, 4)


# --- list parsing -------------------------------------------------------------------


def test_comma_strings_and_sequences_become_int_tuples():
  options = _create(crop_size='129,161', atrous_rates=' 6, 12 ,18', multi_grid=[1, 2, 4],
                    image_pooling_crop_size='65,97', image_pooling_stride='2,3')
  assert options.crop_size == (129, 161)
  assert options.atrous_rates == (6, 12, 18)
  assert options.multi_grid == (1, 2, 4)
  assert options.image_pooling_crop_size == (65, 97)
  assert options.image_pooling_stride == (2, 3)


def test_empty_values_mean_unset():
  options = _create(atrous_rates='', multi_grid=[], decoder_output_stride=None,
                    image_pooling_stride=None)
  assert options.atrous_rates is None and options.multi_grid is None
  assert options.decoder_output_stride is None
  assert options.image_pooling_stride == (1, 1)  # None falls back to the default.


def test_single_int_becomes_one_element_tuple():
  assert _create(decoder_output_stride=4).decoder_output_stride == (4,)


@pytest.mark.parametrize('flag, value', [
    ('crop_size', (129.5, 161)),
    ('crop_size', (True, 161)),
    ('crop_size', '129,abc'),
    ('crop_size', '129.5,161'),
    ('atrous_rates', [6, 12.5, 18]),
    ('atrous_rates', [6, False]),
    ('atrous_rates', True),
    ('multi_grid', [1, None, 4]),
])
def test_non_integers_rejected_in_int_lists(flag, value):
  with pytest.raises(ValueError, match=f'--{flag}'):
    _create(**{flag: value})


@pytest.mark.parametrize('flag, value', [('decoder_output_stride', 4.5),
                                         ('atrous_rates', 6.5)])
def test_scalar_float_rejected_naming_the_flag(flag, value):
  with pytest.raises(ValueError, match=f'--{flag}'):
    _create(**{flag: value})


# --- the cell file ------------------------------------------------------------------


def test_dense_prediction_cell_json_is_read():
  options = _create(dense_prediction_cell_json=cell_lib.RELEASED_CELL_PATH)
  with open(cell_lib.RELEASED_CELL_PATH, encoding='utf-8') as f:
    content = json.load(f)
  assert list(options.dense_prediction_cell_config) == content
  assert options.uses_dense_prediction_cell
  assert options.cell == cell_lib.load_cell(cell_lib.RELEASED_CELL_PATH)
  assert [b.rate for b in options.cell] == [(1, 6), (18, 15), (6, 3), (1, 1), (6, 21)]
  assert [b.input for b in options.cell] == [-1, 0, 1, 0, 0]


def test_missing_cell_file_names_the_file(tmp_path):
  path = str(tmp_path / 'no_such_cell.json')
  with pytest.raises(FileNotFoundError, match='no_such_cell.json'):
    _create(dense_prediction_cell_json=path)


def test_non_json_cell_file_names_the_file(tmp_path):
  path = tmp_path / 'garbage_cell.json'
  path.write_text('{"op": conv', encoding='utf-8')
  with pytest.raises(ValueError, match='garbage_cell.json'):
    _create(dense_prediction_cell_json=str(path))


@pytest.mark.parametrize('cell', [
    [{'op': 'deconv', 'kernel': 3, 'rate': [1, 1], 'input': -1}],
    [{'op': 'conv', 'kernel': 3, 'rate': [1, 1], 'input': 0}],
    [{'op': 'conv', 'kernel': 3, 'input': -1}],
    [],
])
def test_invalid_cell_file_names_the_file(tmp_path, cell):
  path = tmp_path / 'bad_cell.json'
  path.write_text(json.dumps(cell), encoding='utf-8')
  with pytest.raises(ValueError, match='bad_cell.json'):
    _create(dense_prediction_cell_json=str(path))


def test_invalid_inline_cell_config_raises():
  with pytest.raises(ValueError, match='branch 1'):
    _create(dense_prediction_cell_config=[
        {'op': 'conv', 'kernel': 1, 'input': -1},
        {'op': 'pyramid_pooling', 'grid_size': [0, 2], 'input': 0}])


# --- serialisation -----------------------------------------------------------------


def test_json_round_trip():
  options = _create(model_variant='xception_71', crop_size='129,161', output_stride=8,
                    multi_grid=(1, 2, 4), decoder_output_stride=(4,),
                    dense_prediction_cell_json=cell_lib.RELEASED_CELL_PATH,
                    image_pooling_crop_size=(65, 97), fine_tune_batch_norm=False,
                    weight_decay=1e-4)
  text = options.to_json()
  json.loads(text)  # Plain JSON, no tuples or custom types.
  restored = ModelOptions.from_json(text)
  assert restored == options
  assert restored.to_json() == text
  assert restored.cell == options.cell


def test_json_round_trip_of_defaults():
  options = _create(num_classes=21, atrous_rates=(6, 12, 18))
  assert ModelOptions.from_json(options.to_json()) == options
  assert ModelOptions.from_dict(options.to_dict()) == options


def test_replace_validates():
  options = _create()
  assert options.replace(output_stride=8).output_stride == 8
  with pytest.raises(ValueError, match='--output_stride'):
    options.replace(output_stride=7)


def test_logits_output_stride():
  assert _create().logits_output_stride == 16
  assert _create(output_stride=8).logits_output_stride == 8
  assert _create(decoder_output_stride=(4,)).logits_output_stride == 4
  assert _create(decoder_output_stride=(8, 4)).logits_output_stride == 4
  assert _create(output_stride=32, decoder_output_stride=(16, 8)).logits_output_stride == 8
