"""dataset_info.json: the round trip, and every bad field named with its file."""

import json
import os

import pytest

from deeplab_dpc.data import dataset_info

_FIELDS = dict(name='fields', class_names=['sky', 'grass', 'cow'], ignore_label=255,
               splits_to_sizes={'train': 6, 'val': 2},
               colormap=[[10, 20, 30], [0, 200, 0], [200, 0, 0]],
               class_pixel_counts={'train': [5, 0, 7]})


def test_round_trip(tmp_path):
  path = dataset_info.write_dataset_info(str(tmp_path), **_FIELDS)
  assert path == os.path.join(str(tmp_path), 'dataset_info.json')
  assert dataset_info.has_dataset_info(str(tmp_path))
  info = dataset_info.read_dataset_info(str(tmp_path))
  assert info == {'format_version': 1, 'name': 'fields', 'num_classes': 3,
                  'ignore_label': 255, 'class_names': ['sky', 'grass', 'cow'],
                  'splits_to_sizes': {'train': 6, 'val': 2},
                  'colormap': [[10, 20, 30], [0, 200, 0], [200, 0, 0]],
                  'class_pixel_counts': {'train': [5, 0, 7]}}


def test_optional_fields_may_be_absent(tmp_path):
  fields = {k: v for k, v in _FIELDS.items() if k not in ('colormap', 'class_pixel_counts')}
  dataset_info.write_dataset_info(str(tmp_path), **fields)
  info = dataset_info.read_dataset_info(str(tmp_path))
  assert 'colormap' not in info and 'class_pixel_counts' not in info


def test_no_file_names_the_flag_and_the_file(tmp_path):
  assert not dataset_info.has_dataset_info(str(tmp_path))
  assert not dataset_info.has_dataset_info(None)
  with pytest.raises(FileNotFoundError, match=f'--dataset_dir={tmp_path} has no '
                     'dataset_info.json'):
    dataset_info.read_dataset_info(str(tmp_path))


def test_not_json_names_the_file(tmp_path):
  (tmp_path / 'dataset_info.json').write_text('{"name": ')
  with pytest.raises(ValueError, match='dataset_info.json is not valid JSON'):
    dataset_info.read_dataset_info(str(tmp_path))


@pytest.mark.parametrize('change, field', [
    ({'format_version': 2}, 'format_version'),
    ({'name': ''}, 'name'),
    ({'num_classes': 0}, 'num_classes'),
    ({'num_classes': True}, 'num_classes'),
    ({'ignore_label': 1}, 'ignore_label'),
    ({'ignore_label': 256}, 'ignore_label'),
    ({'class_names': ['a', 'b']}, 'class_names'),
    ({'class_names': ['a', 'a', 'b']}, 'class_names'),
    ({'splits_to_sizes': {}}, 'splits_to_sizes'),
    ({'splits_to_sizes': {'train': -1}}, 'splits_to_sizes'),
    ({'colormap': [[0, 0, 0]]}, 'colormap'),
    ({'colormap': [[0, 0, 256], [0, 0, 0], [1, 1, 1]]}, 'colormap'),
    ({'class_pixel_counts': {'test': [1, 2, 3]}}, 'class_pixel_counts'),
    ({'class_pixel_counts': {'train': [1, 2]}}, 'class_pixel_counts'),
    ({'class_pixel_counts': {'train': [1, -2, 3]}}, 'class_pixel_counts'),
])
def test_a_bad_field_is_named_with_the_file(tmp_path, change, field):
  dataset_info.write_dataset_info(str(tmp_path), **_FIELDS)
  path = tmp_path / 'dataset_info.json'
  info = json.loads(path.read_text())
  info.update(change)
  path.write_text(json.dumps(info))
  with pytest.raises(ValueError, match=f"^{path}: field '{field}' "):
    dataset_info.read_dataset_info(str(tmp_path))


def test_a_missing_field_is_named(tmp_path):
  dataset_info.write_dataset_info(str(tmp_path), **_FIELDS)
  path = tmp_path / 'dataset_info.json'
  info = json.loads(path.read_text())
  del info['ignore_label']
  path.write_text(json.dumps(info))
  with pytest.raises(ValueError, match="field 'ignore_label' is missing"):
    dataset_info.read_dataset_info(str(tmp_path))


def test_write_refuses_bad_fields_before_writing(tmp_path):
  with pytest.raises(ValueError, match="field 'ignore_label' 2 is a class id"):
    dataset_info.write_dataset_info(str(tmp_path), **{**_FIELDS, 'ignore_label': 2})
  assert not os.listdir(tmp_path)
