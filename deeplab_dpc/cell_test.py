"""Tests for the original JSON cell format (`deeplab_dpc.cell`)."""

import json
import os

import pytest

from deeplab_dpc import cell as cell_lib
from deeplab_dpc.cell import Branch

_CONV1 = {'op': 'conv', 'kernel': 1, 'input': -1}


def _conv3(rate, inp):
  return {'op': 'conv', 'kernel': 3, 'rate': rate, 'input': inp}


def _pool(grid, inp):
  return {'op': 'pyramid_pooling', 'grid_size': grid, 'input': inp}


# --- valid cells -----------------------------------------------------------------


def test_released_cell_round_trip():
  branches = cell_lib.load_cell(cell_lib.RELEASED_CELL_PATH)
  with open(cell_lib.RELEASED_CELL_PATH, encoding='utf-8') as f:
    content = json.load(f)
  assert cell_lib.cell_to_json(branches) == content
  assert branches == (
      Branch('conv', -1, kernel=3, rate=(1, 6)),
      Branch('conv', 0, kernel=3, rate=(18, 15)),
      Branch('conv', 1, kernel=3, rate=(6, 3)),
      Branch('conv', 0, kernel=3, rate=(1, 1)),
      Branch('conv', 0, kernel=3, rate=(6, 21)),
  )


def test_released_cell_path_is_in_package():
  assert os.path.basename(cell_lib.RELEASED_CELL_PATH) == (
      'dense_prediction_cell_branch5_top1_cityscapes.json')
  assert os.path.isfile(cell_lib.RELEASED_CELL_PATH)


def test_constants():
  assert cell_lib.CONV == 'conv'
  assert cell_lib.PYRAMID_POOLING == 'pyramid_pooling'
  assert cell_lib.BACKBONE_INPUT == -1


def test_every_branch_kind_round_trips():
  obj = [_CONV1, _conv3([3, 21], 0), _pool([2, 4], 1), _pool([1, 1], -1)]
  branches = cell_lib.parse_cell(obj)
  assert branches[0] == Branch('conv', -1, kernel=1)
  assert branches[1] == Branch('conv', 0, kernel=3, rate=(3, 21))
  assert branches[2] == Branch('pyramid_pooling', 1, grid_size=(2, 4))
  assert cell_lib.cell_to_json(branches) == obj
  assert cell_lib.parse_cell(cell_lib.cell_to_json(branches)) == branches


@pytest.mark.parametrize('kernel, expected', [(1, 1), ([1, 1], 1), (3, 3), ([3, 3], 3)])
def test_kernel_pair_accepted(kernel, expected):
  obj = {'op': 'conv', 'kernel': kernel, 'rate': [1, 1], 'input': -1}
  (branch,) = cell_lib.parse_cell([obj])
  assert branch.kernel == expected
  # A 1x1 conv has no rate, whatever the file says: the original ignores it.
  assert branch.rate == (None if expected == 1 else (1, 1))


def test_parse_cell_accepts_branches_and_tuples():
  branches = cell_lib.load_cell(cell_lib.RELEASED_CELL_PATH)
  assert cell_lib.parse_cell(branches) == branches
  assert cell_lib.parse_cell(list(branches)) == branches
  assert cell_lib.parse_cell(tuple(cell_lib.cell_to_json(branches))) == branches


def test_branch_is_hashable_and_frozen():
  branch = Branch('conv', -1, kernel=1)
  assert len({branch, Branch('conv', -1, kernel=1)}) == 1
  with pytest.raises(AttributeError):
    branch.input = 0  # type: ignore[misc]


def test_source_named_in_errors():
  with pytest.raises(ValueError, match=r'^my_flag: branch 0: unknown op'):
    cell_lib.parse_cell([{'op': 'bad', 'input': -1}], source='my_flag')


# --- bad cells -------------------------------------------------------------------


@pytest.mark.parametrize('obj, pattern', [
    ([{'op': 'sep_conv', 'kernel': 3, 'rate': [1, 1], 'input': -1}],
     r"branch 0: unknown op 'sep_conv'"),
    ([_CONV1, {'op': 'Conv', 'kernel': 1, 'input': 0}], r"branch 1: unknown op 'Conv'"),
    ([{'kernel': 1, 'input': -1}], r'branch 0: unknown op None'),
    ([{'op': 'conv', 'kernel': 5, 'input': -1}], r'branch 0: field "kernel" must be 1 or 3'),
    ([{'op': 'conv', 'kernel': 2, 'input': -1}], r'field "kernel" must be 1 or 3, got 2'),
    ([{'op': 'conv', 'kernel': [1, 3], 'input': -1}], r'field "kernel" must be 1 or 3'),
    ([{'op': 'conv', 'kernel': [3, 3, 3], 'input': -1}], r'field "kernel" must be 1 or 3'),
    ([{'op': 'conv', 'kernel': '3', 'input': -1}], r'field "kernel" must be 1 or 3'),
    ([{'op': 'conv', 'kernel': True, 'input': -1}], r'field "kernel" must be 1 or 3'),
])
def test_bad_op_or_kernel(obj, pattern):
  with pytest.raises(ValueError, match=pattern):
    cell_lib.parse_cell(obj)


@pytest.mark.parametrize('value', [
    [0, 1], [1, 0], [-1, 3], [1], [1, 2, 3], '3', 3, [1.5, 2], [2.0, 2], [True, 1],
    ['1', '1'], None, {'h': 1, 'w': 1}])
def test_bad_rate(value):
  with pytest.raises(ValueError, match=r'branch 0: field "rate" must be a pair of positive ints'):
    cell_lib.parse_cell([_conv3(value, -1)])


@pytest.mark.parametrize('value', [[0, 1], [1], '3', [1.5, 2], [True, 1], [2, -2], 4])
def test_bad_grid_size(value):
  with pytest.raises(ValueError,
                     match=r'branch 1: field "grid_size" must be a pair of positive ints'):
    cell_lib.parse_cell([_CONV1, _pool(value, 0)])


@pytest.mark.parametrize('obj, index, value', [
    ([_conv3([1, 1], 0)], 0, '0'),          # branch 0 reading itself
    ([_CONV1, _CONV1, _pool([1, 1], 5)], 2, '5'),  # out of range
    ([_CONV1, _conv3([1, 1], 1)], 1, '1'),  # reading itself
    ([_CONV1, _conv3([1, 1], 2), _CONV1], 1, '2'),  # forward reference
    ([_CONV1, _conv3([1, 1], -2)], 1, '-2'),
    ([{'op': 'conv', 'kernel': 1, 'input': 0.0}], 0, '0.0'),
    ([{'op': 'conv', 'kernel': 1, 'input': '-1'}], 0, "'-1'"),
    ([{'op': 'conv', 'kernel': 1, 'input': True}], 0, 'True'),
])
def test_bad_input(obj, index, value):
  with pytest.raises(ValueError,
                     match=rf'branch {index}: field "input" must be -1 .* got {value}$'):
    cell_lib.parse_cell(obj)


def test_input_message_lists_allowed_range():
  with pytest.raises(ValueError, match=r'earlier branch \(0\.\.1\), got 5'):
    cell_lib.parse_cell([_CONV1, _CONV1, _pool([1, 1], 5)])


@pytest.mark.parametrize('obj, pattern', [
    ([{'op': 'conv', 'kernel': 1}], r'branch 0: missing field "input"'),
    ([{'op': 'conv', 'input': -1}], r'branch 0: conv needs field "kernel"'),
    ([{'op': 'conv', 'kernel': 3, 'input': -1}], r'branch 0: a 3x3 conv needs field "rate"'),
    ([_CONV1, {'op': 'pyramid_pooling', 'input': 0}],
     r'branch 1: pyramid_pooling needs field "grid_size"'),
    ([_CONV1, {'op': 'pyramid_pooling', 'grid': [1, 1], 'input': 0}],
     r'branch 1: pyramid_pooling needs field "grid_size"'),
])
def test_missing_fields(obj, pattern):
  with pytest.raises(ValueError, match=pattern):
    cell_lib.parse_cell(obj)


@pytest.mark.parametrize('obj', [[], ()])
def test_empty_cell(obj):
  with pytest.raises(ValueError, match='the cell is empty'):
    cell_lib.parse_cell(obj)


@pytest.mark.parametrize('obj, type_name', [
    ({'op': 'conv', 'kernel': 1, 'input': -1}, 'dict'), ('conv', 'str'), (None, 'NoneType'),
    (5, 'int')])
def test_non_list_top_level(obj, type_name):
  with pytest.raises(ValueError, match=f'must be a JSON list of branches, got {type_name}'):
    cell_lib.parse_cell(obj)


@pytest.mark.parametrize('branch', [[1, 2], 'conv', None])
def test_branch_not_an_object(branch):
  with pytest.raises(ValueError, match='branch 1: must be a JSON object'):
    cell_lib.parse_cell([_CONV1, branch])


# --- files -----------------------------------------------------------------------


def test_missing_file_names_flag(tmp_path):
  path = str(tmp_path / 'nope.json')
  with pytest.raises(FileNotFoundError, match='dense_prediction_cell_json') as e:
    cell_lib.load_cell(path)
  assert path in str(e.value)


def test_directory_is_not_a_cell_file(tmp_path):
  with pytest.raises(FileNotFoundError, match='dense_prediction_cell_json'):
    cell_lib.load_cell(str(tmp_path))


@pytest.mark.parametrize('text', ['', 'not json', '[{"op": "conv",]', "[{'op': 'conv'}]"])
def test_non_json_file(tmp_path, text):
  path = tmp_path / 'cell.json'
  path.write_text(text, encoding='utf-8')
  with pytest.raises(ValueError, match='not a JSON file') as e:
    cell_lib.load_cell(str(path))
  assert str(path) in str(e.value)


def test_invalid_cell_file_names_file(tmp_path):
  path = tmp_path / 'cell.json'
  path.write_text(json.dumps([_conv3([1, 1], 3)]), encoding='utf-8')
  with pytest.raises(ValueError, match=rf'^{path}: branch 0: field "input"'):
    cell_lib.load_cell(str(path))


def test_save_cell_round_trip(tmp_path):
  branches = cell_lib.parse_cell([_CONV1, _conv3([6, 21], 0), _pool([8, 2], 1)])
  path = str(tmp_path / 'sub' / 'cell.json')  # the directory is created
  cell_lib.save_cell(branches, path)
  assert cell_lib.load_cell(path) == branches
  with open(path, encoding='utf-8') as f:
    text = f.read()
  assert text.endswith('\n') and json.loads(text) == cell_lib.cell_to_json(branches)
  assert os.listdir(os.path.dirname(path)) == ['cell.json']  # no temporary left


def test_save_cell_overwrites(tmp_path):
  path = str(tmp_path / 'cell.json')
  cell_lib.save_cell(cell_lib.parse_cell([_CONV1]), path)
  released = cell_lib.load_cell(cell_lib.RELEASED_CELL_PATH)
  cell_lib.save_cell(released, path)
  assert cell_lib.load_cell(path) == released


def test_save_cell_is_atomic(tmp_path, monkeypatch):
  # A failure before the final rename must leave the old file whole and no
  # temporary behind.
  path = str(tmp_path / 'cell.json')
  old = cell_lib.parse_cell([_CONV1])
  cell_lib.save_cell(old, path)

  def failing_replace(src, dst):
    raise OSError('simulated crash before rename')

  monkeypatch.setattr(os, 'replace', failing_replace)
  with pytest.raises(OSError, match='simulated crash'):
    cell_lib.save_cell(cell_lib.load_cell(cell_lib.RELEASED_CELL_PATH), path)
  monkeypatch.undo()
  assert cell_lib.load_cell(path) == old
  assert os.listdir(tmp_path) == ['cell.json']


# --- inputs that once slipped through.


def test_float_kernel_rejected():
  with pytest.raises(ValueError, match='field "kernel"'):
    cell_lib.parse_cell([_conv3([1, 1], -1) | {'kernel': 3.0}])


def test_non_utf8_file_names_file(tmp_path):
  path = tmp_path / 'cell.json'
  path.write_bytes(b'\xff\xfe\x00 garbage')
  with pytest.raises(ValueError, match='not a JSON file') as e:
    cell_lib.load_cell(str(path))
  assert str(path) in str(e.value)


def test_malformed_branch_object_is_a_value_error():
  with pytest.raises(ValueError, match='rate'):
    cell_lib.parse_cell([Branch('conv', -1, kernel=3)])
