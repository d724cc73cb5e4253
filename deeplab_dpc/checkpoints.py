"""Loading checkpoints: the original release's TF1 checkpoints, and ours.

Our variable paths are the original names except for two scopes the original does
not have: the model's own name and the ASPP layer's (the original puts ASPP's
scopes at the top level). `original_name` is that whole mapping.

Our own checkpoints are TF2 object-based checkpoints whose `model` node holds
every variable under its original name (`save_checkpoint`); so both formats are
read the same way, by name, and TensorBoard, the original and ours agree on names.

Modes (what a checkpoint must provide):
* `strict`: every model variable, and nothing else but training state;
* `backbone`: the backbone's variables (e.g. the ImageNet-pretrained
  `xception_65` checkpoint); everything else keeps its initialisation;
* `exclude_logits`: everything but `logits/` (fine-tuning to a new class count,
  the original's `initialize_last_layer=False`).
"""

import os
import re

from absl import logging
import numpy as np
import tensorflow as tf

from deeplab_dpc import constants
from deeplab_dpc import fileio
from deeplab_dpc.heads import aspp as aspp_lib
from deeplab_dpc.model import MODEL_NAME

STRICT, BACKBONE, EXCLUDE_LOGITS = 'strict', 'backbone', 'exclude_logits'
MODES = (STRICT, BACKBONE, EXCLUDE_LOGITS)
# The attribute under which our object-based checkpoints hold the model.
CHECKPOINT_MODEL_KEY = 'model'

# Scopes our layers add that the original graph does not have.
_DROPPED_SCOPES = (MODEL_NAME + '/', aspp_lib.ASPP_LAYER_NAME + '/')
# Training state in original checkpoints, not model variables.
_TRAINING_STATE = re.compile(
    r'(^global_step$)|(/Momentum$)|(/ExponentialMovingAverage$)|(/RMSProp(_1)?$)|'
    r'(/Adam(_1)?$)|(^beta[12]_power$)')
_OBJECT_GRAPH_KEY = '_CHECKPOINTABLE_OBJECT_GRAPH'
_VALUE_SUFFIX = '/.ATTRIBUTES/VARIABLE_VALUE'


def original_name(variable_path: str) -> str:
  """The original checkpoint key of one of our variables."""
  name = variable_path
  for scope in _DROPPED_SCOPES:
    if name.startswith(scope):
      name = name[len(scope):]
  return name


def original_names(model) -> dict[str, object]:
  """{original name: variable} for every variable of a built model."""
  return {original_name(v.path): v for v in model.weights}


def _backbone_scope(model) -> str:
  return model.backbone.name + '/'


def _resolve(path: str, flag: str) -> str:
  """Accepts a checkpoint prefix or a directory holding checkpoints.

  A directory is resolved by its `checkpoint` state file (ours, a TF1 logdir), else
  by the one `*.index` in it (the released tarballs hold `model.ckpt.*` only).
  """
  if fileio.isdir(path):
    latest = tf.train.latest_checkpoint(path)
    if latest is not None:
      return latest
    prefixes = [index[:-len('.index')] for index in fileio.glob_in(path, '*.index')]
    if len(prefixes) == 1:
      return prefixes[0]
    if prefixes:
      raise ValueError(f'--{flag}: directory {path} holds several checkpoints and no '
                       'checkpoint state file; give one prefix: ' + ', '.join(prefixes))
    raise FileNotFoundError(f'--{flag}: no checkpoint in directory {path}')
  if not fileio.exists(path + '.index'):
    if fileio.exists(path):
      raise ValueError(f'--{flag}: {path} is not a checkpoint (give the prefix, '
                       'e.g. model.ckpt, not one of its files)'
                       if not path.endswith(('.index', '.data-00000-of-00001')) else
                       f'--{flag}: give the checkpoint prefix, not the file {path}')
    raise FileNotFoundError(f'--{flag}: no checkpoint at {path}')
  return path


def _unescape(node_name: str) -> str:
  """Inverts TF's escaping of object names in checkpoint keys ('/' -> '.S', '.' -> '..')."""
  out, i = [], 0
  while i < len(node_name):
    if node_name[i] == '.' and i + 1 < len(node_name):
      out.append('/' if node_name[i + 1] == 'S' else node_name[i + 1])
      i += 2
    else:
      out.append(node_name[i])
      i += 1
  return ''.join(out)


def _checkpoint_variables(reader) -> dict[str, tuple[str, tuple[int, ...]]]:
  """{original name: (checkpoint key, shape)} of a TF1 checkpoint or one of ours."""
  shapes = reader.get_variable_to_shape_map()
  if _OBJECT_GRAPH_KEY not in shapes:
    return {name: (name, tuple(shape)) for name, shape in shapes.items()}
  prefix = CHECKPOINT_MODEL_KEY + '/'
  out = {}
  for key, shape in shapes.items():
    if key.startswith(prefix) and key.endswith(_VALUE_SUFFIX):
      out[_unescape(key[len(prefix):-len(_VALUE_SUFFIX)])] = (key, tuple(shape))
  return out


def load_reader(path: str):
  """`tf.train.load_checkpoint` of a prefix or a folder, on any filesystem.

  TensorFlow's own takes a prefix for a folder on filesystems that call any prefix
  of a file name a folder (ram://: `ckpt-2` when `ckpt-2.index` exists).
  """
  if fileio.isdir(path):
    return tf.train.load_checkpoint(path)
  return tf.compat.v1.train.NewCheckpointReader(path)


def variable_names(path: str) -> list[str]:
  """Original names of the variables in a checkpoint (TF1 or ours), training state excluded."""
  return sorted(name for name in _checkpoint_variables(load_reader(path))
                if not _TRAINING_STATE.search(name))


def is_object_based(path: str) -> bool:
  """True for TF2 object-based checkpoints (ours), False for name-based (TF1)."""
  return _OBJECT_GRAPH_KEY in load_reader(path).get_variable_to_shape_map()


def _reader(path: str, flag: str):
  """(resolved prefix, checkpoint reader); errors name `--flag`."""
  path = _resolve(path, flag)
  try:
    return path, load_reader(path)
  except Exception as e:  # pylint: disable=broad-except
    raise UnreadableCheckpointError(f'--{flag}: {path} is not a readable checkpoint '
                                    f'({_one_line(e)})') from None


def logits_num_classes(path: str, flag: str = 'tf_initial_checkpoint') -> int | None:
  """The class count a checkpoint's logits predict; None when it has no logits.

  Read from the shapes alone (no tensor is loaded), so a class count that
  disagrees with the dataset is found before any model is built.

  Raises:
    FileNotFoundError / ValueError: no checkpoint at `path` (naming `--flag`).
  """
  path, reader = _reader(path, flag)
  counts = {shape[-1] for name, (_, shape) in _checkpoint_variables(reader).items()
            if name.startswith(constants.LOGITS_SCOPE_NAME + '/') and shape}
  return max(counts) if counts else None


def check_num_classes(path: str, num_classes: int, flag: str, source: str,
                      hint: str = '') -> None:
  """Refuses a checkpoint whose logits predict another number of classes.

  Args:
    path: Checkpoint prefix or directory.
    num_classes: The class count the run needs.
    flag: The checkpoint's flag (named in the message).
    source: What says `num_classes` (e.g. '--dataset=custom (DIR/dataset_info.json)').
    hint: A remedy appended to the message.

  Raises:
    ValueError: Naming both class counts, the flag and `source`.
  """
  found = logits_num_classes(path, flag)
  if found is not None and found != num_classes:
    raise ValueError(f'--{flag}={path} predicts {found} classes (its logits) but {source} '
                     f'has {num_classes}' + (f': {hint}' if hint else ''))


def _selected(names, mode: str, backbone_scope: str) -> set[str]:
  if mode == BACKBONE:
    return {n for n in names if n.startswith(backbone_scope)}
  if mode == EXCLUDE_LOGITS:
    return {n for n in names if not n.startswith(constants.LOGITS_SCOPE_NAME + '/')}
  return set(names)


class UnreadableCheckpointError(ValueError):
  """A checkpoint whose files cannot be read (truncated, flipped bytes, a missing shard)."""


def _one_line(error) -> str:
  message = getattr(error, 'message', None) or str(error)
  message = re.sub(r'\{\{[^}]*\}\}|\[Op:[^\]]*\]', ' ', message)
  return ' '.join(message.split())


def load_checkpoint(model, path: str, mode: str = STRICT,
                    flag: str = 'tf_initial_checkpoint') -> dict:
  """Assigns a checkpoint's values to `model`, matching variables by original name.

  Reads the original release's name-based (TF1) checkpoints and ours alike.
  Nothing is assigned unless every wanted variable is there with its shape.

  Args:
    model: A built `DeepLabModel`.
    path: Checkpoint prefix (or a directory: its latest checkpoint).
    mode: `strict`, `backbone` or `exclude_logits` (module docstring).
    flag: Flag name to cite in errors.

  Returns:
    {'loaded': n, 'skipped': [model variables left as they were],
     'ignored': [checkpoint variables not used]}.

  Raises:
    FileNotFoundError: no checkpoint at `path`.
    UnreadableCheckpointError: the files cannot be read (a ValueError).
    ValueError: not a checkpoint, or missing, unexpected or shape-mismatched
      variables (all listed in one message).
  """
  if mode not in MODES:
    raise ValueError(f'checkpoint mode must be one of {MODES}, got {mode!r}')
  path, reader = _reader(path, flag)
  stored = _checkpoint_variables(reader)
  ours = original_names(model)
  wanted = _selected(ours, mode, _backbone_scope(model))
  missing = sorted(n for n in wanted if n not in stored)
  mismatched = sorted(
      f'{n}: checkpoint {list(stored[n][1])} vs model {list(ours[n].shape)}'
      for n in wanted if n in stored and stored[n][1] != tuple(ours[n].shape))
  unused = sorted(n for n in stored if n not in wanted and not _TRAINING_STATE.search(n))
  if mode == BACKBONE:
    unexpected = []  # An ImageNet checkpoint holds a classifier, optimizer slots...
  elif mode == EXCLUDE_LOGITS:
    unexpected = [n for n in unused if not n.startswith(constants.LOGITS_SCOPE_NAME + '/')]
  else:
    unexpected = unused
  if missing or mismatched or unexpected:
    raise ValueError(_mismatch_message(path, flag, mode, model, missing, unexpected,
                                       mismatched, stored))
  # Every value is read before any is assigned: a corrupt tensor (its checksum
  # fails only when read) leaves the model as it was.
  values = {}
  for name in sorted(wanted):
    try:
      values[name] = reader.get_tensor(stored[name][0])
    except tf.errors.OpError as e:
      raise UnreadableCheckpointError(
          f'--{flag}: checkpoint {path} is unreadable: variable {stored[name][0]}: '
          f'{_one_line(e)}') from None
  for name, value in values.items():
    ours[name].assign(value.astype(np.float32))
  skipped = sorted(set(ours) - wanted)
  if skipped:
    logging.info('Checkpoint %s (%s): %d variables loaded, %d kept their '
                 'initialisation', path, mode, len(wanted), len(skipped))
  return {'loaded': len(wanted), 'skipped': skipped, 'ignored': unused}


def load_tf1_checkpoint(model, path: str, mode: str = STRICT,
                        flag: str = 'tf_initial_checkpoint') -> dict:
  """Loads an original release checkpoint (TF1, name-based) into `model`.

  The same as `load_checkpoint`, which also reads ours; see there.
  """
  return load_checkpoint(model, path, mode, flag)


def _mismatch_message(path, flag, mode, model, missing, unexpected, mismatched, stored):
  lines = [f'--{flag}: checkpoint {path} does not match the model '
           f'({model.options.model_variant}, mode {mode}):']
  for title, items in (('missing from the checkpoint', missing),
                       ('in the checkpoint but not in the model', unexpected),
                       ('shape mismatch', mismatched)):
    if items:
      shown = items[:12]
      more = f' ... and {len(items) - len(shown)} more' if len(items) > len(shown) else ''
      lines.append(f'  {len(items)} {title}: ' + ', '.join(shown) + more)
  variants = sorted({n.split('/', 1)[0] for n in stored
                     if n.startswith(('xception_', 'MobilenetV2'))})
  if variants and _backbone_scope(model).rstrip('/') not in variants:
    lines.append(f'  the checkpoint holds backbone {", ".join(variants)}: check '
                 '--model_variant')
  if any(m.startswith(constants.LOGITS_SCOPE_NAME + '/') for m in mismatched):
    lines.append('  the logits differ in shape (another class count?): set '
                 '--initialize_last_layer=False to skip them')
  return '\n'.join(lines)


def checkpointable(model):
  """A trackable holding the model's variables by original name (for tf.train.Checkpoint)."""
  return tf.train.Checkpoint(**original_names(model))


def save_checkpoint(model, prefix: str) -> str:
  """Writes our checkpoint of the model alone (variables by original name)."""
  return tf.train.Checkpoint(**{CHECKPOINT_MODEL_KEY: checkpointable(model)}).write(prefix)
