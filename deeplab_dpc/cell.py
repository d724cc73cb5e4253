"""The original JSON format of a dense prediction cell: parsing, validation, writing.

A cell is a list of branches. Branch i reads either the backbone features
(`input` -1) or the output of an earlier branch j < i (`input` j) and applies one
operation:

* `{"op": "conv", "kernel": 1, "input": k}`: 1x1 conv + BN + ReLU;
* `{"op": "conv", "kernel": 3, "rate": [r_h, r_w], "input": k}`: 3x3 split
  separable conv with (possibly non-square) atrous rate;
* `{"op": "pyramid_pooling", "grid_size": [g_h, g_w], "input": k}`: average
  pooling into a g_h x g_w grid, 1x1 conv, bilinear resize back.

The cell output is the concatenation of every branch. This module is shared by the
DPC layer (`heads/dense_prediction_cell.py`) and the search space, and needs no
TensorFlow.
"""

import dataclasses
import json
import os
from typing import Any, Sequence

from deeplab_dpc import fileio

CONV = 'conv'
PYRAMID_POOLING = 'pyramid_pooling'
OPS = (CONV, PYRAMID_POOLING)
# Index of the backbone features as a branch input.
BACKBONE_INPUT = -1

_PACKAGE_CELLS_DIR = os.path.join(os.path.dirname(__file__), 'cells')
# The cell released with the original code (top-1 of the search on Cityscapes).
RELEASED_CELL_PATH = os.path.join(
    _PACKAGE_CELLS_DIR, 'dense_prediction_cell_branch5_top1_cityscapes.json')


@dataclasses.dataclass(frozen=True)
class Branch:
  """One branch of a dense prediction cell.

  Attributes:
    op: `conv` or `pyramid_pooling`.
    input: -1 for the backbone features, else the index of an earlier branch.
    kernel: 1 or 3 for `conv`; None for `pyramid_pooling`.
    rate: (r_h, r_w) atrous rate of a 3x3 conv, else None.
    grid_size: (g_h, g_w) of a pyramid pooling, else None.
  """
  op: str
  input: int
  kernel: int | None = None
  rate: tuple[int, int] | None = None
  grid_size: tuple[int, int] | None = None

  def to_json(self) -> dict[str, Any]:
    """The branch in the original JSON form."""
    if self.op == PYRAMID_POOLING:
      return {'op': self.op, 'grid_size': list(self.grid_size), 'input': self.input}
    if self.kernel == 1:
      return {'op': self.op, 'kernel': 1, 'input': self.input}
    return {'op': self.op, 'kernel': 3, 'rate': list(self.rate), 'input': self.input}


def _positive_int_pair(value, field: str, where: str) -> tuple[int, int]:
  if (not isinstance(value, (list, tuple)) or len(value) != 2 or
      not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in value)):
    raise ValueError(
        f'{where}: field "{field}" must be a pair of positive ints [h, w], got {value!r}')
  return (value[0], value[1])


def _kernel(value, where: str) -> int:
  # The original accepts both `1` and `[1, 1]` (and `3` / `[3, 3]`).
  kernel = value
  if isinstance(kernel, (list, tuple)) and len(kernel) == 2 and kernel[0] == kernel[1]:
    kernel = kernel[0]
  if not isinstance(kernel, int) or isinstance(kernel, bool) or kernel not in (1, 3):
    raise ValueError(f'{where}: field "kernel" must be 1 or 3, got {value!r}')
  return kernel


def parse_branch(obj: Any, index: int, source: str = 'cell') -> Branch:
  """Validates one branch dict of the original format.

  Args:
    obj: The branch as decoded from JSON.
    index: Its position in the cell (inputs must refer to earlier branches).
    source: Name of the file or flag the cell came from, for error messages.

  Returns:
    The validated `Branch`.

  Raises:
    ValueError: naming the source, the branch and the field at fault.
  """
  where = f'{source}: branch {index}'
  if isinstance(obj, Branch):
    obj = {k: list(v) if isinstance(v, tuple) else v
           for k, v in dataclasses.asdict(obj).items() if v is not None}
  if not isinstance(obj, dict):
    raise ValueError(f'{where}: must be a JSON object, got {type(obj).__name__}')
  op = obj.get('op')
  if op not in OPS:
    raise ValueError(f'{where}: unknown op {op!r} (field "op" must be one of {list(OPS)})')
  if 'input' not in obj:
    raise ValueError(f'{where}: missing field "input"')
  inp = obj['input']
  if not isinstance(inp, int) or isinstance(inp, bool) or not BACKBONE_INPUT <= inp < index:
    raise ValueError(
        f'{where}: field "input" must be -1 (backbone features) or the index of an '
        f'earlier branch (0..{index - 1}), got {inp!r}')
  if op == PYRAMID_POOLING:
    if 'grid_size' not in obj:
      raise ValueError(f'{where}: pyramid_pooling needs field "grid_size"')
    grid_size = _positive_int_pair(obj['grid_size'], 'grid_size', where)
    return Branch(op=op, input=inp, grid_size=grid_size)
  if 'kernel' not in obj:
    raise ValueError(f'{where}: conv needs field "kernel"')
  kernel = _kernel(obj['kernel'], where)
  if kernel == 1:
    return Branch(op=op, input=inp, kernel=1)
  if 'rate' not in obj:
    raise ValueError(f'{where}: a 3x3 conv needs field "rate"')
  return Branch(op=op, input=inp, kernel=3, rate=_positive_int_pair(obj['rate'], 'rate', where))


def parse_cell(obj: Any, source: str = 'cell') -> tuple[Branch, ...]:
  """Validates a whole cell (a list of branch dicts of the original format).

  Args:
    obj: The decoded JSON value, or a sequence of `Branch`.
    source: Name of the file or flag the cell came from, for error messages.

  Returns:
    The branches, in order.

  Raises:
    ValueError: on an empty cell or any invalid branch.
  """
  if not isinstance(obj, (list, tuple)):
    raise ValueError(f'{source}: a cell must be a JSON list of branches, got {type(obj).__name__}')
  if not obj:
    raise ValueError(f'{source}: the cell is empty (it needs at least one branch)')
  return tuple(parse_branch(b, i, source) for i, b in enumerate(obj))


def load_cell(path: str) -> tuple[Branch, ...]:
  """Reads and validates a cell JSON file (the `dense_prediction_cell_json` flag).

  Raises:
    FileNotFoundError: if the file does not exist.
    ValueError: if it is not JSON or not a valid cell; the message names the file.
  """
  if not fileio.isfile(path):
    raise FileNotFoundError(f'dense_prediction_cell_json: no such file: {path}')
  try:
    with fileio.open_file(path, encoding='utf-8') as f:
      obj = json.loads(f.read())
  except (json.JSONDecodeError, UnicodeDecodeError) as e:
    raise ValueError(f'{path}: not a JSON file ({e})') from None
  return parse_cell(obj, source=path)


def cell_to_json(branches: Sequence[Branch]) -> list[dict[str, Any]]:
  """The cell in the original JSON form (a list of dicts)."""
  return [b.to_json() for b in branches]


def save_cell(branches: Sequence[Branch], path: str) -> None:
  """Writes a cell JSON file atomically (a kill never leaves half a file)."""
  fileio.atomic_write(path, json.dumps(cell_to_json(branches)) + '\n')
