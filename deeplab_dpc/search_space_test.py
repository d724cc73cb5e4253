"""Tests for the dense prediction cell search space (no TensorFlow needed)."""

import collections
import itertools
import json
import math
import os
import random
import subprocess
import sys

import keras
import numpy as np
import pytest

from deeplab_dpc import cell as cell_lib
from deeplab_dpc import search_space as ss
from deeplab_dpc.cell import Branch
from deeplab_dpc.heads import dense_prediction_cell as dpc_lib

# Operations used to build small cells by hand: a, b, c, d are distinct.
A = ss.OPERATIONS[0]   # 1x1 conv
B = ss.OPERATIONS[10]  # a 3x3 separable conv
C = ss.OPERATIONS[70]  # a pyramid pooling
D = ss.OPERATIONS[80]  # another pyramid pooling


def _cell(*pairs):
  """A cell from (operation, input) pairs."""
  return tuple(op.to_branch(inp) for op, inp in pairs)


def _relabel(cell, order):
  """`cell` with its branches listed in `order` (old indices), inputs renamed along."""
  new_index = {old: new for new, old in enumerate(order)}
  return tuple(
      Branch(b.op, -1 if b.input == -1 else new_index[b.input], b.kernel, b.rate, b.grid_size)
      for b in (cell[i] for i in order))


def _random_topological_order(cell, rng):
  """A uniformly drawn branch order in which every input precedes its readers."""
  placed, order = set(), []
  while len(order) < len(cell):
    ready = [i for i, b in enumerate(cell)
             if i not in placed and (b.input == -1 or b.input in placed)]
    pick = rng.choice(ready)
    placed.add(pick)
    order.append(pick)
  return order


def _brute_force_class(cell):
  """The smallest relabelling of `cell` over all valid orders: an oracle of equivalence."""
  best = None
  for order in itertools.permutations(range(len(cell))):
    position = {old: new for new, old in enumerate(order)}
    if any(cell[i].input != -1 and position[cell[i].input] >= position[i] for i in order):
      continue
    key = tuple((ss.OPERATIONS.index(ss.operation_of(b)), b.input)
                for b in _relabel(cell, order))
    best = key if best is None or key < best else best
  return best


def _released():
  return cell_lib.load_cell(cell_lib.RELEASED_CELL_PATH)


# --- space size ------------------------------------------------------------------


@pytest.mark.parametrize('num_branches, size', [
    (1, 81), (2, 13_122), (3, 3_188_646), (4, 1_033_121_304), (5, 418_414_128_120)])
def test_space_size_pinned(num_branches, size):
  assert ss.space_size(num_branches) == size
  assert type(ss.space_size(num_branches)) is int


def test_space_size_default_is_five_branches():
  assert ss.DEFAULT_NUM_BRANCHES == 5
  assert ss.space_size() == 418_414_128_120


def test_space_size_matches_formula_for_large_b():
  assert ss.space_size(12) == math.factorial(12) * 81**12


@pytest.mark.parametrize('bad', [0, -1, 2.0, '5', True, None])
def test_space_size_bad_num_branches(bad):
  with pytest.raises(ValueError, match='num_branches'):
    ss.space_size(bad)


# --- operations ------------------------------------------------------------------


def test_operations_contents():
  assert ss.CONV_RATES == (1, 3, 6, 9, 12, 15, 18, 21)
  assert ss.GRID_SIZES == (1, 2, 4, 8)
  ops = ss.OPERATIONS
  assert len(ops) == 81 and len(set(ops)) == 81
  assert ops == ss.enumerate_operations()
  assert ops[0] == ss.Operation('conv', kernel=1)
  separable = [op for op in ops if op.kernel == 3]
  assert {op.rate for op in separable} == set(itertools.product(ss.CONV_RATES, repeat=2))
  assert len(separable) == 64 and all(op.op == 'conv' for op in separable)
  pooling = [op for op in ops if op.op == 'pyramid_pooling']
  assert {op.grid_size for op in pooling} == set(itertools.product(ss.GRID_SIZES, repeat=2))
  assert len(pooling) == 16 and all(op.kernel is None and op.rate is None for op in pooling)
  # The order is part of the API.
  assert ops[1].rate == (1, 1) and ops[2].rate == (1, 3) and ops[64].rate == (21, 21)
  assert ops[65].grid_size == (1, 1) and ops[80].grid_size == (8, 8)
  assert len({op.name for op in ops}) == 81
  assert ops[0].name == 'conv_1x1'
  assert ss.Operation('conv', 3, (6, 21)).name == 'sep_conv_3x3_rate_6x21'
  assert ss.Operation('pyramid_pooling', grid_size=(2, 4)).name == 'pyramid_pooling_2x4'


def test_operations_round_trip_through_branches_and_json():
  for op in ss.OPERATIONS:
    branch = ss.op_to_branch(op, -1)
    assert ss.operation_of(branch) == op
    assert cell_lib.parse_cell([branch.to_json()]) == (branch,)


def test_operation_outside_space():
  with pytest.raises(ValueError, match='not in the search space'):
    ss.operation_of(Branch('conv', -1, kernel=3, rate=(2, 2)))
  with pytest.raises(ValueError, match='not in the search space'):
    ss.op_to_branch(ss.Operation('pyramid_pooling', grid_size=(3, 3)), -1)


def test_no_tensorflow_import():
  code = ('import sys, deeplab_dpc.search_space; '
          'sys.exit(any(m.split(".")[0] in ("tensorflow", "keras") for m in sys.modules))')
  repo_root = os.path.dirname(os.path.dirname(os.path.abspath(ss.__file__)))
  assert subprocess.run([sys.executable, '-c', code], cwd=repo_root,
                        check=False).returncode == 0


# --- sampling --------------------------------------------------------------------


def test_sample_is_reproducible_and_in_space():
  assert ss.sample_cell(random.Random(3)) == ss.sample_cell(random.Random(3))
  rng = random.Random(0)
  for num_branches in (1, 2, 5, 9):
    for _ in range(50):
      cell = ss.sample_cell(rng, num_branches)
      assert len(cell) == num_branches
      assert all(-1 <= b.input < i for i, b in enumerate(cell))
      assert ss.check_in_search_space(cell) == cell


def test_sampled_cells_round_trip_through_json():
  rng = random.Random(1)
  for _ in range(200):
    cell = ss.sample_cell(rng)
    assert cell_lib.parse_cell(cell_lib.cell_to_json(cell)) == cell


def test_sampled_cells_save_and_load(tmp_path):
  cell = ss.sample_cell(random.Random(2))
  path = str(tmp_path / 'cell.json')
  cell_lib.save_cell(cell, path)
  assert cell_lib.load_cell(path) == cell


def _chi_square(counts, expected):
  return sum((c - expected)**2 / expected for c in counts)


def test_sampling_is_uniform():
  rng = random.Random(1234)
  num_cells = 20_000
  op_counts = collections.Counter()
  input_counts = [collections.Counter() for _ in range(5)]
  joint = collections.Counter()
  for _ in range(num_cells):
    cell = ss.sample_cell(rng)
    for i, b in enumerate(cell):
      op_counts[ss.operation_of(b)] += 1
      input_counts[i][b.input] += 1
    joint[cell[1].input, cell[2].input] += 1
  # Operations: 80 degrees of freedom (mean 80, sd ~12.6); inputs of branch i: i
  # degrees of freedom. The bounds sit ~5 sd out; the seed is fixed anyway.
  num_ops = 5 * num_cells
  assert len(op_counts) == 81
  assert _chi_square([op_counts[op] for op in ss.OPERATIONS], num_ops / 81) < 145
  assert set(input_counts[0]) == {-1}
  for i in range(1, 5):
    assert set(input_counts[i]) == set(range(-1, i))
    assert _chi_square(input_counts[i].values(), num_cells / (i + 1)) < i + 5 * (2 * i)**0.5 + 5
  assert len(joint) == 6 and _chi_square(joint.values(), num_cells / 6) < 20


def test_sample_bad_arguments():
  with pytest.raises(ValueError, match='num_branches'):
    ss.sample_cell(random.Random(0), 0)
  with pytest.raises(TypeError, match='random.Random'):
    ss.sample_cell(0)
  with pytest.raises(TypeError, match='random.Random'):
    ss.sample_cell(random)


# --- mutation --------------------------------------------------------------------


def _differences(old, new):
  """(branch, field) pairs that differ, with op fields lumped as `op`."""
  diffs = []
  for i, (a, b) in enumerate(zip(old, new)):
    if ss.operation_of(a) != ss.operation_of(b):
      diffs.append((i, 'op'))
    if a.input != b.input:
      diffs.append((i, 'input'))
  return diffs


def test_mutation_changes_exactly_one_field():
  kinds = collections.Counter()
  for seed in range(1000):
    rng = random.Random(seed)
    cell = ss.sample_cell(rng, rng.randint(1, 6))
    mutated = ss.mutate_cell(cell, rng)
    assert len(mutated) == len(cell) and mutated != cell
    diffs = _differences(cell, mutated)
    assert len(diffs) == 1, (cell, mutated)
    kinds[diffs[0][1]] += 1
    assert ss.check_in_search_space(cell_lib.cell_to_json(mutated)) == mutated
  assert kinds['op'] > 400 and kinds['input'] > 200


def test_mutation_of_one_branch_cell_changes_its_operation():
  rng = random.Random(5)
  cell = _cell((A, -1))
  seen = {ss.mutate_cell(cell, rng)[0] for _ in range(2000)}
  assert len(seen) == 80 and all(b.input == -1 for b in seen)


def test_mutation_accepts_json_and_is_reproducible():
  cell = cell_lib.cell_to_json(_released())
  assert ss.mutate_cell(cell, random.Random(9)) == ss.mutate_cell(_released(), random.Random(9))


def test_mutation_require_new_hash():
  # Moving branch 2 between the two identical parents gives an equivalent cell.
  cell = _cell((A, -1), (A, -1), (B, 0))
  assert ss.cell_hash(cell) == ss.cell_hash(_cell((A, -1), (A, -1), (B, 1)))
  for seed in range(300):
    mutated = ss.mutate_cell(cell, random.Random(seed), require_new_hash=True)
    assert ss.cell_hash(mutated) != ss.cell_hash(cell)
    assert len(_differences(cell, mutated)) == 1


def test_mutation_rejects_cells_outside_the_space():
  cell = [{'op': 'conv', 'kernel': 3, 'rate': [2, 2], 'input': -1}]
  with pytest.raises(ValueError, match='rate'):
    ss.mutate_cell(cell, random.Random(0))
  with pytest.raises(TypeError):
    ss.mutate_cell(_released(), 0)


# --- canonical form and hash -----------------------------------------------------


def test_hash_of_released_cell_is_pinned():
  # The hash keys the search's records: changing it silently would retrain cells.
  assert ss.cell_hash(_released()) == '79cd3a42691394c3bd1639ebaea6fadeb86a73c0'
  assert ss.cell_hash(cell_lib.cell_to_json(_released())) == ss.cell_hash(_released())


def test_hash_invariant_under_consistent_relabelling():
  rng = random.Random(7)
  cells = [_released()] + [ss.sample_cell(rng, n) for n in (2, 3, 5, 5, 5, 7, 8)]
  # A cell with nested inputs: two chains of depth 3 and siblings at each level.
  cells.append(_cell((A, -1), (B, 0), (C, 1), (B, -1), (D, 3), (C, 4), (A, 0), (A, 3)))
  for cell in cells:
    for _ in range(30):
      order = _random_topological_order(cell, rng)
      permuted = _relabel(cell, order)
      assert cell_lib.parse_cell(permuted) == permuted  # still a valid cell
      assert ss.cell_hash(permuted) == ss.cell_hash(cell)
      assert ss.canonical_form(permuted) == ss.canonical_form(cell)


def test_hash_changes_with_op_or_input():
  cell = _cell((A, -1), (B, 0), (C, 0), (D, 1))
  assert ss.cell_hash(_cell((A, -1), (B, 0), (C, 0), (A, 1))) != ss.cell_hash(cell)
  assert ss.cell_hash(_cell((A, -1), (B, 0), (C, 0), (D, 2))) != ss.cell_hash(cell)
  released = _released()
  changed_rate = list(released)
  changed_rate[2] = ss.op_to_branch(ss.Operation('conv', 3, (3, 6)), 1)
  assert ss.cell_hash(changed_rate) != ss.cell_hash(released)


def test_hash_sees_dataflow_not_only_op_input_pairs():
  # Same multiset of (op, input index); C reads A in one, B in the other.
  assert (ss.cell_hash(_cell((A, -1), (B, -1), (C, 0), (D, 1))) !=
          ss.cell_hash(_cell((B, -1), (A, -1), (C, 0), (D, 1))))
  # Same multiset of branch expressions (A, A, B(A), C(A)), but B and C share
  # their parent in one cell and not in the other: different weight sharing.
  assert (ss.cell_hash(_cell((A, -1), (A, -1), (B, 0), (C, 0))) !=
          ss.cell_hash(_cell((A, -1), (A, -1), (B, 0), (C, 1))))


def test_hash_agrees_with_brute_force_equivalence_exhaustively():
  # All 4! * 3^4 = 1944 four-branch cells over three operations: the hash must
  # partition them exactly as trying every relabelling does.
  ops = (A, B, C)
  by_hash, by_oracle = {}, {}
  for inputs in itertools.product(*(range(-1, i) for i in range(4))):
    for op_choice in itertools.product(ops, repeat=4):
      cell = _cell(*zip(op_choice, inputs))
      by_hash.setdefault(ss.cell_hash(cell), set()).add(cell)
      by_oracle.setdefault(_brute_force_class(cell), set()).add(cell)
  assert sum(len(v) for v in by_hash.values()) == 1944
  assert set(map(frozenset, by_hash.values())) == set(map(frozenset, by_oracle.values()))
  assert len(by_hash) < 1944  # equivalences do occur


def test_canonicalize_is_valid_idempotent_and_hash_preserving():
  rng = random.Random(11)
  for _ in range(200):
    cell = ss.sample_cell(rng, rng.randint(1, 7))
    canonical = ss.canonicalize(cell)
    assert cell_lib.parse_cell(canonical) == canonical
    assert ss.canonicalize(canonical) == canonical
    assert ss.cell_hash(canonical) == ss.cell_hash(cell)
    if len(cell) <= 5:
      assert _brute_force_class(canonical) == _brute_force_class(cell)
    assert collections.Counter(map(ss.operation_of, canonical)) == collections.Counter(
        map(ss.operation_of, cell))


def test_canonical_form_loads_back():
  form = ss.canonical_form(_released())
  assert cell_lib.parse_cell(json.loads(form)) == ss.canonicalize(_released())


def test_canonicalize_deep_chain_needs_no_recursion():
  cell = _cell(*[(B, i - 1) for i in range(3000)])
  assert ss.canonicalize(cell) == cell
  assert len(ss.cell_hash(cell)) == 40


def test_canonical_form_of_cells_outside_the_space():
  # Any valid cell can be hashed, e.g. a seed with rates the search never samples.
  cell = [{'op': 'conv', 'kernel': 3, 'rate': [2, 2], 'input': -1},
          {'op': 'conv', 'kernel': 3, 'rate': [2, 200], 'input': -1}]
  assert ss.cell_hash(cell) == ss.cell_hash(cell[::-1])


# --- cost ------------------------------------------------------------------------


def test_cost_of_released_cell_matches_table_1():
  cost = ss.cell_cost(cell_lib.cell_to_json(_released()), 65, 129, 2048)
  assert cost['branch_weights'] == 814_080
  assert cost['madds'] == 6_826_060_800 == 814_080 * 65 * 129
  assert cost['projection_weights'] == 5 * 256 * 256
  assert cost['projection_madds'] == 5 * 256 * 256 * 65 * 129
  assert cost['total_weights'] == 814_080 + 327_680
  assert cost['total_madds'] == cost['madds'] + cost['projection_madds']
  # Batch norm scale + offset: 2048 + 256 channels in branch 0, 256 + 256 in the
  # others, 256 in the projection.
  assert cost['batch_norm_params'] == 2 * (2048 + 256 + 4 * 512 + 256)
  assert [b['input_channels'] for b in cost['branches']] == [2048, 256, 256, 256, 256]
  assert cost['branches'][0]['weights'] == 9 * 2048 + 2048 * 256
  assert ss.cell_cost(_released(), 65, 129, 2048) == cost


def test_cost_of_1x1_conv_by_hand():
  cost = ss.cell_cost([{'op': 'conv', 'kernel': 1, 'input': -1},
                       {'op': 'conv', 'kernel': 1, 'input': 0}], 33, 33, 320)
  assert cost['branches'][0]['weights'] == 320 * 256 == 81_920
  assert cost['branches'][1]['weights'] == 256 * 256 == 65_536
  assert cost['branch_weights'] == 147_456
  assert cost['madds'] == 147_456 * 1089 == 160_579_584
  assert cost['projection_weights'] == 2 * 256 * 256


def test_cost_of_pyramid_pooling_by_hand():
  # 513 x 1025 crop at output stride 16: 33 x 65 features. Grid 2 x 4: kernels
  # int(512 / 32 + 1) = 17 and int(1024 / 64 + 1) = 17, so the VALID stride-1
  # pooled map is 17 x 49 and the 1x1 conv runs 833 times.
  cost = ss.cell_cost([{'op': 'pyramid_pooling', 'grid_size': [2, 4], 'input': -1}],
                      33, 65, 2048)
  assert cost['branch_weights'] == 2048 * 256 == 524_288
  assert cost['branches'][0]['positions'] == 17 * 49
  assert cost['madds'] == 524_288 * 833 == 436_731_904
  assert cost['projection_madds'] == 256 * 256 * 33 * 65
  # Grid 1 x 1 pools the whole map: one position.
  cost = ss.cell_cost([{'op': 'conv', 'kernel': 1, 'input': -1},
                       {'op': 'pyramid_pooling', 'grid_size': [1, 1], 'input': 0}],
                      33, 65, 2048)
  assert cost['branches'][1] == {'input_channels': 256, 'weights': 65_536,
                                 'madds': 65_536, 'positions': 1}


def test_cost_of_separable_conv_from_a_branch_by_hand():
  cost = ss.cell_cost([{'op': 'conv', 'kernel': 1, 'input': -1},
                       {'op': 'conv', 'kernel': 3, 'rate': [21, 1], 'input': 0}],
                      10, 20, 64, reduction_size=128)
  assert cost['branches'][1]['weights'] == 9 * 128 + 128 * 128
  assert cost['branches'][1]['madds'] == (9 * 128 + 128 * 128) * 200
  assert cost['branches'][0]['weights'] == 64 * 128
  assert cost['projection_weights'] == 2 * 128 * 256


def test_cost_with_image_pooling_crop_size():
  # Evaluating on 1025 x 2049 (65 x 129 features) while pooling as on a 769 x 2049
  # crop: grid 1 gives a 49 x 129 kernel, so 17 x 1 pooled positions.
  cell = [{'op': 'pyramid_pooling', 'grid_size': [1, 1], 'input': -1}]
  cost = ss.cell_cost(cell, 65, 129, 2048, image_pooling_crop_size=[769, 2049])
  assert cost['branches'][0]['positions'] == 17 * 1
  with pytest.raises(ValueError, match='larger than'):
    ss.cell_cost(cell, 33, 33, 2048, image_pooling_crop_size=[769, 769])


@pytest.mark.parametrize('kwargs, field', [
    (dict(height=0), 'height'), (dict(width=1.5), 'width'), (dict(channels=True), 'channels'),
    (dict(reduction_size=-1), 'reduction_size'), (dict(output_stride=0), 'output_stride'),
    (dict(image_pooling_crop_size=[513]), 'image_pooling_crop_size'),
    (dict(image_pooling_crop_size=[513, 0]), r'image_pooling_crop_size\[1\]')])
def test_cost_bad_arguments(kwargs, field):
  args = dict(height=33, width=33, channels=2048)
  args.update(kwargs)
  with pytest.raises(ValueError, match=field):
    ss.cell_cost(_released(), **args)


def test_cost_rejects_invalid_cell():
  with pytest.raises(ValueError, match='unknown op'):
    ss.cell_cost([{'op': 'sep_conv', 'input': -1}], 33, 33, 2048)


# --- budget ----------------------------------------------------------------------


def test_budget_filter():
  cost = ss.cell_cost(_released(), 65, 129, 2048)
  assert ss.within_budget(cost)
  assert ss.within_budget(cost, max_madds=6_826_060_800, max_params=814_080)  # inclusive
  assert not ss.within_budget(cost, max_madds=6_826_060_799)
  assert not ss.within_budget(cost, max_params=814_079)
  assert ss.within_budget(cost, max_madds=7e9)
  budget = ss.CostBudget(max_madds=3e9)
  rng = random.Random(4)
  cells = [ss.sample_cell(rng) for _ in range(300)]
  kept = [c for c in cells if budget.admits(ss.cell_cost(c, 65, 129, 2048))]
  assert 0 < len(kept) < len(cells)
  assert all(ss.cell_cost(c, 65, 129, 2048)['madds'] <= 3e9 for c in kept)


@pytest.mark.parametrize('kwargs', [dict(max_madds=-1), dict(max_params='1e6'),
                                    dict(max_params=True), dict(max_madds=float('nan'))])
def test_budget_bad_limits(kwargs):
  with pytest.raises(ValueError, match=next(iter(kwargs))):
    ss.CostBudget(**kwargs)


# --- seed cells ------------------------------------------------------------------


def test_seed_cell_valid():
  obj = cell_lib.cell_to_json(_released())
  assert ss.validate_seed_cell(obj) == _released()
  assert ss.validate_seed_cell(obj, num_branches=5) == _released()
  assert ss.validate_seed_cell(_released()) == _released()


@pytest.mark.parametrize('obj, pattern', [
    ([{'op': 'sep_conv', 'kernel': 3, 'rate': [1, 1], 'input': -1}],
     r"seed\.json: branch 0: unknown op 'sep_conv'"),
    ([{'op': 'conv', 'kernel': 1, 'input': -1}, {'op': 'atrous', 'input': 0}],
     r"branch 1: unknown op 'atrous'"),
    ([{'op': 'conv', 'kernel': 3, 'rate': [1, 2], 'input': -1}],
     r'seed\.json: branch 0: field "rate" \[1, 2\] is outside the search space'),
    ([{'op': 'conv', 'kernel': 1, 'input': -1},
      {'op': 'pyramid_pooling', 'grid_size': [3, 1], 'input': 0}],
     r'branch 1: field "grid_size" \[3, 1\] is outside the search space'),
    ([{'op': 'conv', 'kernel': 5, 'input': -1}], r'branch 0: field "kernel"'),
    ([{'op': 'conv', 'kernel': 1, 'input': 0}], r'branch 0: field "input"'),
    ({'op': 'conv'}, 'must be a JSON list'),
    ([], 'empty'),
])
def test_seed_cell_errors(obj, pattern):
  with pytest.raises(ValueError, match=pattern):
    ss.validate_seed_cell(obj, source='seed.json')


def test_seed_cell_wrong_number_of_branches():
  with pytest.raises(ValueError, match='5 branches.*num_branches=3'):
    ss.validate_seed_cell(_released(), num_branches=3)
  with pytest.raises(ValueError, match='num_branches'):
    ss.validate_seed_cell(_released(), num_branches=0)


def test_effective_cell_caps_rates_that_read_only_padding():
  cell = [{'op': 'conv', 'kernel': 3, 'rate': [21, 6], 'input': -1},
          {'op': 'conv', 'kernel': 3, 'rate': [9, 12], 'input': 0},
          {'op': 'conv', 'kernel': 1, 'input': -1},
          {'op': 'pyramid_pooling', 'grid_size': [8, 1], 'input': 1}]
  # 17x17 features, rates doubled (output stride 8): r >= 9 reaches past the map.
  effective = ss.effective_cell(cell, (17, 17), rate_multiplier=2)
  assert [b.rate for b in effective] == [(9, 6), (9, 9), None, None]
  assert [b.grid_size for b in effective] == [None, None, None, (8, 1)]
  # On 33x65 features at rate multiplier 1 only rates >= 33 (none) or >= 65 would cap.
  assert ss.effective_cell(cell, (33, 65)) == ss.check_in_search_space(cell)
  # Each side on its own: rates >= 6 reach past a 12-high map at multiplier 2.
  assert ss.effective_cell(cell, (12, 65), 2)[0].rate == (6, 6)


def test_cells_equal_in_effect_compute_the_same_function():
  # The cell layer on 17x17 features at output stride 8: rates 9 and 21 (18 and 42
  # after doubling) both read only padding off the centre, so equal weights give
  # equal outputs.
  features = np.random.default_rng(0).uniform(0, 2, size=(1, 17, 17, 8)).astype(np.float32)
  outputs = []
  for rate in ([9, 21], [21, 9]):
    keras.utils.set_random_seed(0)
    layer = dpc_lib.DensePredictionCell(
        [{'op': 'conv', 'kernel': 3, 'rate': rate, 'input': -1}], output_stride=8)
    outputs.append(np.asarray(layer(features, training=False)))
  np.testing.assert_allclose(outputs[0], outputs[1], rtol=1e-6, atol=1e-6)
  a, b = (ss.effective_cell([{'op': 'conv', 'kernel': 3, 'rate': r, 'input': -1}],
                                      (17, 17), 2) for r in ([9, 21], [21, 9]))
  assert ss.cell_hash(a) == ss.cell_hash(b)
