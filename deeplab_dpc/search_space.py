"""The search space of the dense prediction cell (Chen et al., NeurIPS 2018, Sec. 3.1).

A cell has B branches. Branch i (0-based) reads the backbone features or the output
of any earlier branch (i + 1 choices) and applies one of 81 operations:

* a 1x1 conv;
* a 3x3 atrous separable conv with rate r_h x r_w, r_h, r_w in `CONV_RATES` (64 ops);
* an average spatial pyramid pooling with grid g_h x g_w, g_h, g_w in `GRID_SIZES`
  (16 ops).

The cell output is the concatenation of every branch, followed by a 1x1 projection.
Cells are read and written in the original JSON format (`deeplab_dpc.cell`), so any
searched cell drops into `--dense_prediction_cell_json`. Every function here accepts
a cell either in that JSON form (a list of dicts) or as a sequence of `cell.Branch`.

The module is pure Python (no TensorFlow) so the search controller can sample,
deduplicate and budget cells without building a model. See `docs/search_space.md`.
"""

import dataclasses
import hashlib
import json
import math
import random
from typing import Any, Mapping, Sequence

from deeplab_dpc import cell as cell_lib
from deeplab_dpc.cell import BACKBONE_INPUT, CONV, PYRAMID_POOLING, Branch
from deeplab_dpc.sizes import positive_int as _positive_int
from deeplab_dpc.sizes import pyramid_pooling_kernel
from deeplab_dpc.sizes import scale_dimension

__all__ = [
    'CONV_RATES', 'GRID_SIZES', 'DEFAULT_NUM_BRANCHES', 'Operation', 'OPERATIONS',
    'space_size', 'enumerate_operations', 'operation_of', 'op_to_branch',
    'check_in_search_space', 'validate_seed_cell', 'sample_cell', 'mutate_cell',
    'canonicalize', 'canonical_form', 'cell_hash', 'effective_cell', 'scale_dimension',
    'pyramid_pooling_kernel', 'cell_cost', 'CostBudget', 'within_budget',
]

CONV_RATES = (1, 3, 6, 9, 12, 15, 18, 21)
GRID_SIZES = (1, 2, 4, 8)
DEFAULT_NUM_BRANCHES = 5
# Output channels of every branch (`reduction_size`) and of the concat projection
# (`concat_channels`) in the original hparams.
_REDUCTION_SIZE = 256
_CONCAT_CHANNELS = 256
_SEPARABLE_KERNEL = 3


@dataclasses.dataclass(frozen=True)
class Operation:
  """One of the 81 operations a branch can apply (a branch without its input).

  The fields mirror `cell.Branch`, so an operation plus an input is a branch.

  Attributes:
    op: `conv` or `pyramid_pooling`.
    kernel: 1 or 3 for `conv`; None for `pyramid_pooling`.
    rate: (r_h, r_w) of a 3x3 separable conv, else None.
    grid_size: (g_h, g_w) of a pyramid pooling, else None.
  """
  op: str
  kernel: int | None = None
  rate: tuple[int, int] | None = None
  grid_size: tuple[int, int] | None = None

  @property
  def name(self) -> str:
    """A short readable name, e.g. `sep_conv_3x3_rate_6x21` or `pyramid_pooling_2x4`."""
    if self.op == PYRAMID_POOLING:
      return f'pyramid_pooling_{self.grid_size[0]}x{self.grid_size[1]}'
    if self.kernel == 1:
      return 'conv_1x1'
    return f'sep_conv_3x3_rate_{self.rate[0]}x{self.rate[1]}'

  def to_branch(self, input: int) -> Branch:  # pylint: disable=redefined-builtin
    """The branch applying this operation to `input` (-1 = backbone features)."""
    return Branch(op=self.op, input=input, kernel=self.kernel, rate=self.rate,
                  grid_size=self.grid_size)


def enumerate_operations() -> tuple[Operation, ...]:
  """All operations of the space in their fixed order.

  The order (1x1 conv; 3x3 separable convs by (r_h, r_w) row-major; pyramid
  poolings by (g_h, g_w) row-major) is part of the API: an operation's index in
  `OPERATIONS` is stable, so it can key tables and logs.
  """
  ops = [Operation(CONV, kernel=1)]
  ops += [Operation(CONV, kernel=_SEPARABLE_KERNEL, rate=(rh, rw))
          for rh in CONV_RATES for rw in CONV_RATES]
  ops += [Operation(PYRAMID_POOLING, grid_size=(gh, gw))
          for gh in GRID_SIZES for gw in GRID_SIZES]
  return tuple(ops)


OPERATIONS = enumerate_operations()
_OPERATION_INDEX = {op: i for i, op in enumerate(OPERATIONS)}


def _check_num_branches(num_branches: Any) -> int:
  # bool is an int subclass, but `space_size(True)` is surely a mistake.
  if not isinstance(num_branches, int) or isinstance(num_branches, bool) or num_branches < 1:
    raise ValueError(f'num_branches must be an int >= 1, got {num_branches!r}')
  return num_branches


def space_size(num_branches: int = DEFAULT_NUM_BRANCHES) -> int:
  """Number of cells with `num_branches` branches: B! * 81^B.

  Branch i has i + 1 input choices and 81 operations. This counts cells as
  written (branch order matters); many are equivalent up to a branch permutation
  (see `cell_hash`).

  Raises:
    ValueError: if `num_branches` is not an int >= 1.
  """
  num_branches = _check_num_branches(num_branches)
  return math.factorial(num_branches) * len(OPERATIONS) ** num_branches


def _as_cell(cell: Any, source: str = 'cell') -> tuple[Branch, ...]:
  """Validates a cell given as JSON (list of dicts) or as a sequence of `Branch`."""
  return cell_lib.parse_cell(cell, source)


def operation_of(branch: Branch) -> Operation:
  """The operation a branch applies.

  Raises:
    ValueError: if the operation is not one of `OPERATIONS`.
  """
  operation = Operation(branch.op, kernel=branch.kernel, rate=branch.rate,
                        grid_size=branch.grid_size)
  if operation not in _OPERATION_INDEX:
    raise ValueError(f'operation {operation} is not in the search space')
  return operation


def op_to_branch(operation: Operation, input: int) -> Branch:  # pylint: disable=redefined-builtin
  """The branch applying `operation` (one of `OPERATIONS`) to `input`."""
  if operation not in _OPERATION_INDEX:
    raise ValueError(f'operation {operation!r} is not in the search space')
  return operation.to_branch(input)


def check_in_search_space(cell: Any, source: str = 'cell') -> tuple[Branch, ...]:
  """Checks that a valid cell only uses operations of the search space.

  The original format allows any positive rate or grid size; the search only
  samples those in `CONV_RATES` and `GRID_SIZES`.

  Args:
    cell: The cell, as JSON or a sequence of `Branch`.
    source: Name of the file or flag the cell came from, for error messages.

  Returns:
    The cell as a tuple of `Branch`.

  Raises:
    ValueError: naming the source, the branch and the field outside the space.
  """
  branches = _as_cell(cell, source)
  for i, branch in enumerate(branches):
    where = f'{source}: branch {i}'
    if branch.op == PYRAMID_POOLING:
      if not all(g in GRID_SIZES for g in branch.grid_size):
        raise ValueError(
            f'{where}: field "grid_size" {list(branch.grid_size)} is outside the search '
            f'space (g_h and g_w must each be one of {list(GRID_SIZES)})')
    elif branch.kernel == _SEPARABLE_KERNEL:
      if not all(r in CONV_RATES for r in branch.rate):
        raise ValueError(
            f'{where}: field "rate" {list(branch.rate)} is outside the search space '
            f'(r_h and r_w must each be one of {list(CONV_RATES)})')
  return branches


def validate_seed_cell(obj: Any, source: str = 'seed cell', *,
                       num_branches: int | None = None) -> tuple[Branch, ...]:
  """Validates a user-supplied cell that seeds a (local) search.

  Args:
    obj: The cell, as decoded JSON or a sequence of `Branch`.
    source: Name of the file or flag the cell came from, for error messages.
    num_branches: If given, the number of branches the cell must have.

  Returns:
    The cell as a tuple of `Branch`.

  Raises:
    ValueError: on a malformed cell (unknown op, bad field, forward input...), on
      an operation outside the search space, or on the wrong number of branches;
      the message names the source, and the branch and field at fault.
  """
  branches = check_in_search_space(obj, source)
  if num_branches is not None:
    num_branches = _check_num_branches(num_branches)
    if len(branches) != num_branches:
      raise ValueError(
          f'{source}: the cell has {len(branches)} branches, the search uses '
          f'num_branches={num_branches}')
  return branches


def _check_rng(rng: Any) -> random.Random:
  # A numpy Generator or the `random` module would also "work" with other
  # semantics; insisting on an instance keeps runs reproducible from one seed.
  if not isinstance(rng, random.Random):
    raise TypeError(f'rng must be a random.Random instance, got {type(rng).__name__}')
  return rng


def sample_cell(rng: random.Random,
                num_branches: int = DEFAULT_NUM_BRANCHES) -> tuple[Branch, ...]:
  """Samples a cell uniformly from the search space.

  Each branch's input is uniform over its i + 1 choices and its operation uniform
  over the 81, independently, so every one of the `space_size(num_branches)`
  cells is equally likely.

  Args:
    rng: The source of randomness.
    num_branches: Number of branches B.

  Returns:
    The cell as a tuple of `Branch`.
  """
  rng = _check_rng(rng)
  num_branches = _check_num_branches(num_branches)
  return tuple(
      op_to_branch(OPERATIONS[rng.randrange(len(OPERATIONS))], rng.randrange(i + 1) - 1)
      for i in range(num_branches))


def _mutate_once(branches: tuple[Branch, ...], rng: random.Random) -> tuple[Branch, ...]:
  index = rng.randrange(len(branches))
  branch = branches[index]
  # Branch 0 can only read the backbone features, so only its operation can move.
  if index > 0 and rng.randrange(2):
    # Inputs -1 .. index-1; draw among the `index` others.
    new_input = rng.randrange(index) - 1
    if new_input >= branch.input:
      new_input += 1
    new_branch = dataclasses.replace(branch, input=new_input)
  else:
    current = _OPERATION_INDEX[operation_of(branch)]
    new_op = rng.randrange(len(OPERATIONS) - 1)
    if new_op >= current:
      new_op += 1
    new_branch = op_to_branch(OPERATIONS[new_op], branch.input)
  return branches[:index] + (new_branch,) + branches[index + 1:]


def mutate_cell(cell: Any, rng: random.Random, *,
                require_new_hash: bool = False) -> tuple[Branch, ...]:
  """Changes one branch's operation or input, for local search.

  A branch is drawn uniformly; branch 0 changes its operation, any other branch
  changes its operation or its input with probability 1/2 each, to a value drawn
  uniformly among the other allowed ones. So the result always differs from
  `cell` in exactly one field of one branch and stays in the search space.

  A one-field change can still give an equivalent cell (e.g. moving a branch from
  one of two identical parents to the other); with `require_new_hash` the
  mutation is redrawn until `cell_hash` changes.

  Args:
    cell: A cell of the search space, as JSON or a sequence of `Branch`.
    rng: The source of randomness.
    require_new_hash: Redraw until the result is not equivalent to `cell`.

  Returns:
    The mutated cell as a tuple of `Branch`.

  Raises:
    ValueError: if `cell` is invalid or outside the search space.
  """
  rng = _check_rng(rng)
  branches = check_in_search_space(cell)
  if not require_new_hash:
    return _mutate_once(branches, rng)
  old_hash = cell_hash(branches)
  # Terminates: changing an operation to one used nowhere in the cell always
  # changes the hash, and each draw has a positive chance of doing so.
  while True:
    mutated = _mutate_once(branches, rng)
    if cell_hash(mutated) != old_hash:
      return mutated


def effective_cell(cell: Any, feature_size: tuple[int, int],
                   rate_multiplier: int = 1) -> tuple[Branch, ...]:
  """The cell as it acts on features of `feature_size` (height, width).

  A 3x3 conv whose rate (times `rate_multiplier`: the cell's `16 // output_stride`)
  reaches at least the feature map's side reads only padding with its off-centre
  taps along that side, so every such rate computes the same function. Each is
  replaced by the smallest rate of `CONV_RATES` that does so, which keeps the
  result in the search space: two cells with equal `cell_hash(effective_cell(...))`
  compute the same function on such features (the search trains only one of them).

  Args:
    cell: A cell of the search space.
    feature_size: (height, width) of the features the cell reads.
    rate_multiplier: Factor the cell applies to its rates (2 at output stride 8).

  Returns:
    The cell with each such rate replaced, as a tuple of `Branch`.
  """
  branches = check_in_search_space(cell)
  multiplier = int(rate_multiplier)

  def capped(rate, size):
    if rate * multiplier < size:
      return rate
    return min(r for r in CONV_RATES if r * multiplier >= size)

  result = []
  for branch in branches:
    if branch.op == cell_lib.CONV and branch.kernel == 3:
      rate = (capped(branch.rate[0], feature_size[0]), capped(branch.rate[1], feature_size[1]))
      branch = dataclasses.replace(branch, rate=rate)
    result.append(branch)
  return tuple(result)


def operation_name(branch: Branch) -> str:
  """A short name of a branch's operation: `conv1x1`, `conv3x3r006x003`, `pool4x2`."""
  return _op_key(branch)


def _op_key(branch: Branch) -> str:
  # Any valid cell (not only cells of the space) must get a key, so build it from
  # the fields rather than from the index in OPERATIONS. No '(', ')' or ',' may
  # appear: they delimit the subtree keys below.
  if branch.op == PYRAMID_POOLING:
    return f'pool{branch.grid_size[0]}x{branch.grid_size[1]}'
  if branch.kernel == 1:
    return 'conv1x1'
  return f'conv3x3r{branch.rate[0]:03d}x{branch.rate[1]:03d}'


def _subtree_keys(branches: tuple[Branch, ...]) -> tuple[list[str], list[list[int]]]:
  """Keys that are equal iff two branches root isomorphic subtrees."""
  children = [[] for _ in branches]
  for i, branch in enumerate(branches):
    if branch.input != BACKBONE_INPUT:
      children[branch.input].append(i)
  keys = [''] * len(branches)
  # Inputs point backwards, so walking backwards sees every child before its
  # parent: no recursion, whatever the depth.
  for i in reversed(range(len(branches))):
    children[i].sort(key=lambda c: keys[c])
    keys[i] = f'{_op_key(branches[i])}({",".join(keys[c] for c in children[i])})'
  return keys, children


def canonicalize(cell: Any) -> tuple[Branch, ...]:
  """An equivalent cell with its branches in a canonical order.

  Two cells are equivalent when one is the other with its branches relabelled
  consistently (every `input` renamed along). Both then compute the same function
  up to the order of the concatenated channels, which the 1x1 projection absorbs.
  Because every branch has one input, a cell is a forest hanging from the
  backbone features; the canonical order is a depth-first pre-order of that
  forest with siblings sorted by the key of their subtree, so parents still come
  before children (the result is a valid cell) and equivalent cells map to the
  same one.

  Args:
    cell: A valid cell, as JSON or a sequence of `Branch`.

  Returns:
    The canonical cell as a tuple of `Branch`.
  """
  branches = _as_cell(cell)
  keys, children = _subtree_keys(branches)
  roots = sorted((i for i, b in enumerate(branches) if b.input == BACKBONE_INPUT),
                 key=lambda i: keys[i])
  new_index = {}
  order = []
  stack = list(reversed(roots))
  while stack:
    i = stack.pop()
    new_index[i] = len(order)
    order.append(i)
    stack.extend(reversed(children[i]))
  return tuple(
      dataclasses.replace(branches[i], input=(
          BACKBONE_INPUT if branches[i].input == BACKBONE_INPUT
          else new_index[branches[i].input]))
      for i in order)


def canonical_form(cell: Any) -> str:
  """The canonical cell as compact JSON (equal for equivalent cells only).

  It is the original JSON format of `canonicalize(cell)`, with sorted keys, so it
  both identifies the architecture and loads back with `cell.parse_cell`.
  """
  return json.dumps(cell_lib.cell_to_json(canonicalize(cell)), sort_keys=True,
                    separators=(',', ':'))


def cell_hash(cell: Any) -> str:
  """SHA-1 hex digest of `canonical_form(cell)`: the search's deduplication key.

  Equal for cells equal up to a consistent relabelling of branches, different
  otherwise (barring SHA-1 collisions). Stable across runs and machines.
  """
  return hashlib.sha1(canonical_form(cell).encode('utf-8')).hexdigest()


def cell_cost(cell: Any, height: int, width: int, channels: int, *,
              reduction_size: int = _REDUCTION_SIZE,
              output_stride: int = 16,
              image_pooling_crop_size: Sequence[int] | None = None,
              concat_channels: int = _CONCAT_CHANNELS) -> dict[str, Any]:
  """Parameter count and multiply-adds of a cell on `height` x `width` features.

  Counts what the model builds (see `docs/search_space.md`):

  * 1x1 conv: `C_in * R` weights, applied at every feature position;
  * 3x3 separable conv: depthwise `9 * C_in` plus pointwise `C_in * R` weights,
    both applied at every feature position (taps on the SAME padding included);
  * pyramid pooling: `C_in * R` weights of the 1x1 conv, applied on the pooled
    map, which has `(H - k_h + 1) x (W - k_w + 1)` positions (average pooling with
    kernel `pyramid_pooling_kernel`, stride 1, VALID). The pooling's additions and
    the bilinear resize are not multiply-adds and are not counted.

  `C_in` is `channels` for a branch reading the backbone features and
  `reduction_size` (R) for one reading another branch. Batch norm is folded at
  inference, so it adds no multiply-adds; its trainable scale and offset are
  reported apart.

  Args:
    cell: A valid cell, as JSON or a sequence of `Branch`.
    height: Feature height H.
    width: Feature width W.
    channels: Channels of the backbone features.
    reduction_size: Output channels of every branch.
    output_stride: Output stride of the features (see `pyramid_pooling_kernel`).
    image_pooling_crop_size: [crop_h, crop_w] for the pyramid poolings, if not
      the crop the features come from.
    concat_channels: Output channels of the concat projection.

  Returns:
    A dict with `branch_weights` and `madds` (the branches only, as the paper's
    Table 1), `projection_weights` and `projection_madds` (the 1x1 conv on the
    concatenation), `total_weights` and `total_madds` (both),
    `batch_norm_params` (trainable BN scale and offset of branches and
    projection), and `branches`: one dict per branch with `input_channels`,
    `weights`, `madds` and `positions` (where its last conv is evaluated).

  Raises:
    ValueError: on an invalid cell or size, or a pooling kernel larger than the
      features.
  """
  branches = _as_cell(cell)
  height = _positive_int(height, 'height')
  width = _positive_int(width, 'width')
  channels = _positive_int(channels, 'channels')
  reduction_size = _positive_int(reduction_size, 'reduction_size')
  output_stride = _positive_int(output_stride, 'output_stride')
  concat_channels = _positive_int(concat_channels, 'concat_channels')
  if image_pooling_crop_size is not None:
    crop = tuple(image_pooling_crop_size)
    if len(crop) != 2:
      raise ValueError(f'image_pooling_crop_size must be [crop_h, crop_w], got {crop!r}')
    crop_h = _positive_int(crop[0], 'image_pooling_crop_size[0]')
    crop_w = _positive_int(crop[1], 'image_pooling_crop_size[1]')
  else:
    crop_h = crop_w = None

  positions = height * width
  per_branch = []
  batch_norm_params = 0
  for i, branch in enumerate(branches):
    c_in = channels if branch.input == BACKBONE_INPUT else reduction_size
    if branch.op == PYRAMID_POOLING:
      k_h = pyramid_pooling_kernel(height, branch.grid_size[0], output_stride=output_stride,
                                   image_pooling_crop_size=crop_h)
      k_w = pyramid_pooling_kernel(width, branch.grid_size[1], output_stride=output_stride,
                                   image_pooling_crop_size=crop_w)
      if k_h > height or k_w > width:
        raise ValueError(
            f'branch {i}: pyramid pooling kernel {k_h}x{k_w} is larger than the '
            f'{height}x{width} features (image_pooling_crop_size too large?)')
      weights = c_in * reduction_size
      branch_positions = (height - k_h + 1) * (width - k_w + 1)
      madds = weights * branch_positions
      batch_norm_params += 2 * reduction_size
    elif branch.kernel == 1:
      weights = c_in * reduction_size
      branch_positions = positions
      madds = weights * positions
      batch_norm_params += 2 * reduction_size
    else:
      depthwise = _SEPARABLE_KERNEL * _SEPARABLE_KERNEL * c_in
      weights = depthwise + c_in * reduction_size
      branch_positions = positions
      madds = weights * positions
      # One batch norm after the depthwise conv, one after the pointwise conv.
      batch_norm_params += 2 * c_in + 2 * reduction_size
    per_branch.append({'input_channels': c_in, 'weights': weights, 'madds': madds,
                       'positions': branch_positions})

  branch_weights = sum(b['weights'] for b in per_branch)
  madds = sum(b['madds'] for b in per_branch)
  projection_weights = len(branches) * reduction_size * concat_channels
  projection_madds = projection_weights * positions
  batch_norm_params += 2 * concat_channels
  return {
      'branch_weights': branch_weights,
      'madds': madds,
      'projection_weights': projection_weights,
      'projection_madds': projection_madds,
      'total_weights': branch_weights + projection_weights,
      'total_madds': madds + projection_madds,
      'batch_norm_params': batch_norm_params,
      'branches': per_branch,
  }


def _check_limit(value: Any, name: str) -> None:
  if value is not None and (not isinstance(value, (int, float)) or isinstance(value, bool)
                            or not value >= 0):
    raise ValueError(f'{name} must be None or a number >= 0, got {value!r}')


@dataclasses.dataclass(frozen=True)
class CostBudget:
  """An optional limit on a cell's cost; None means unlimited.

  Both limits apply to the branches only (`madds` and `branch_weights` of
  `cell_cost`), the quantities the paper's Table 1 reports; the projection's cost
  grows with B alone, so it does not discriminate between cells of one space.

  Attributes:
    max_madds: Largest allowed `madds`.
    max_params: Largest allowed `branch_weights`.
  """
  max_madds: int | float | None = None
  max_params: int | float | None = None

  def __post_init__(self):
    _check_limit(self.max_madds, 'max_madds')
    _check_limit(self.max_params, 'max_params')

  def admits(self, cost: Mapping[str, Any]) -> bool:
    """Whether a `cell_cost` result is within the budget (limits inclusive)."""
    if self.max_madds is not None and cost['madds'] > self.max_madds:
      return False
    if self.max_params is not None and cost['branch_weights'] > self.max_params:
      return False
    return True


def within_budget(cost: Mapping[str, Any], max_madds: int | float | None = None,
                  max_params: int | float | None = None) -> bool:
  """Whether a `cell_cost` result is within the limits; see `CostBudget`."""
  return CostBudget(max_madds=max_madds, max_params=max_params).admits(cost)
