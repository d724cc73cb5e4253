"""Finding the checkpoints to evaluate: one given path, or each new one in a directory.

As the original's `evaluate_repeatedly` / `checkpoints_iterator`: the latest
checkpoint of `checkpoint_dir` is evaluated, then the directory is polled for a
newer one, evaluations starting at least `interval_secs` apart; checkpoints
written and superseded in between are skipped, as there.
"""

import os
import re
import time
from typing import Callable, Iterator, Optional

from absl import logging

from deeplab_dpc import fileio

# Where `tf.train.Checkpoint(global_step=...)` (our train.py) keeps the step.
_OBJECT_GLOBAL_STEP_KEY = 'global_step/.ATTRIBUTES/VARIABLE_VALUE'
# The original release's TF1 checkpoints.
_TF1_GLOBAL_STEP_KEY = 'global_step'
_STEP_IN_NAME = re.compile(r'-(\d+)$')


def latest_checkpoint(checkpoint_dir: str) -> Optional[str]:
  """The newest checkpoint prefix in `checkpoint_dir` (by its `checkpoint` file), or None."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  if not fileio.isdir(checkpoint_dir):
    return None
  return tf.train.latest_checkpoint(checkpoint_dir)


def resolve_checkpoint(path: str, flag: str) -> str:
  """A checkpoint prefix from a prefix, one of its files, or a directory (its latest).

  Raises:
    FileNotFoundError: naming `flag` when there is no checkpoint there.
  """
  for suffix in ('.index', '.meta'):
    if path.endswith(suffix) and fileio.exists(path[:-len(suffix)] + '.index'):
      return path[:-len(suffix)]
  if re.search(r'\.data-\d{5}-of-\d{5}$', path):
    prefix = path[:path.rindex('.data-')]
    if fileio.exists(prefix + '.index'):
      return prefix
  if fileio.isdir(path):
    latest = latest_checkpoint(path)
    if latest is None:
      raise FileNotFoundError(no_checkpoint_message(path, flag))
    return latest
  if not fileio.exists(path + '.index'):
    raise FileNotFoundError(f'--{flag}: no checkpoint at {path} (expected {path}.index)')
  return path


def check_checkpoint_dir(checkpoint_dir: str, max_count: int = 0, timeout_secs: float = 0,
                         flag: str = 'checkpoint_dir') -> None:
  """Refuses a checkpoint folder that cannot be watched; warns when it does not exist yet.

  Watching forever (`max_count` <= 0) or with a timeout waits for a folder that
  does not exist yet, with a warning at the start (a mistyped path would
  otherwise wait silently). With a count and no timeout a missing folder is an
  error: the user asked for evaluations, not for a wait.

  Raises:
    FileNotFoundError: A missing folder with a count and no timeout.
    ValueError: The path is a file.
  """
  if fileio.isdir(checkpoint_dir):
    return
  if fileio.exists(checkpoint_dir):
    raise ValueError(f'--{flag}={checkpoint_dir} is a file, not a folder of checkpoints')
  if max_count > 0 and timeout_secs <= 0:
    raise FileNotFoundError(no_checkpoint_message(checkpoint_dir, flag))
  logging.warning('--%s=%s does not exist (yet): waiting for a training run to create it',
                  flag, checkpoint_dir)


def no_checkpoint_message(checkpoint_dir: str, flag: str = 'checkpoint_dir') -> str:
  what = 'does not exist' if not fileio.isdir(checkpoint_dir) else 'holds no checkpoint'
  return (f'--{flag}: {checkpoint_dir} {what} (expected a `checkpoint` index file naming '
          'ckpt-<step> files written by train.py, or an original TF1 checkpoint)')


def global_step_of(checkpoint_path: str) -> int:
  """The training step of a checkpoint.

  Read from the checkpoint's `global_step` variable (ours or the original's), else
  the number after the last '-' of the file name (`ckpt-1200`, `model.ckpt-30000`),
  else 0.
  """
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  try:
    # A prefix, read as such (`checkpoints.load_reader` says why).
    reader = tf.compat.v1.train.NewCheckpointReader(checkpoint_path)
    for key in (_OBJECT_GLOBAL_STEP_KEY, _TF1_GLOBAL_STEP_KEY):
      if reader.has_tensor(key):
        return int(reader.get_tensor(key))
  except (tf.errors.OpError, ValueError):
    pass  # Unreadable here: the loader reports it with the flag's name.
  match = _STEP_IN_NAME.search(os.path.basename(checkpoint_path))
  return int(match.group(1)) if match else 0


def checkpoints(checkpoint_dir: str, interval_secs: float = 300,
                max_count: int = 0, timeout_secs: float = 0, poll_secs: float = 1.0,
                clock: Callable[[], float] = time.monotonic,
                sleep: Callable[[float], None] = time.sleep) -> Iterator[str]:
  """Yields each new latest checkpoint of `checkpoint_dir`, as the original evaluation loop.

  Waits (polling every `poll_secs`, logging once per wait) while there is no new
  checkpoint. Consecutive yields start at least `interval_secs` apart.

  Args:
    checkpoint_dir: Directory of a training run.
    interval_secs: Minimum time between the starts of two evaluations.
    max_count: Stop after this many checkpoints; 0 or less = never.
    timeout_secs: Stop after waiting this long without a new checkpoint; 0 = wait
      forever (the original's default).
    poll_secs: Time between looks at the directory while waiting.
    clock: Monotonic clock (tests replace it).
    sleep: Sleep function (tests replace it).

  Yields:
    Checkpoint prefixes, each once.
  """
  last, count = None, 0
  while max_count <= 0 or count < max_count:
    waited_since = clock()
    logged = False
    while True:
      latest = latest_checkpoint(checkpoint_dir)
      if latest is not None and latest != last:
        break
      if timeout_secs > 0 and clock() - waited_since >= timeout_secs:
        logging.info('No new checkpoint in %s for %.0f s (--checkpoint_timeout_secs); stopping.',
                     checkpoint_dir, timeout_secs)
        return
      if not logged:
        logging.info('Waiting for %s checkpoint in %s',
                     'a new' if last else 'a', checkpoint_dir)
        logged = True
      sleep(poll_secs)
    started = clock()
    last = latest
    count += 1
    yield latest
    if max_count > 0 and count >= max_count:
      return
    remaining = interval_secs - (clock() - started)
    if remaining > 0:
      sleep(remaining)


def run_on_checkpoints(fn: Callable[..., dict], checkpoint_dir: str, interval_secs: float = 300,
                       max_count: int = 0, timeout_secs: float = 0, poll_secs: float = 1.0,
                       flag: str = 'checkpoint_dir') -> list:
  """Calls `fn(checkpoint_path, flag=flag)` on each new checkpoint of `checkpoint_dir`.

  When does it wait? Evaluating once (`max_count=1`) with no `timeout_secs`
  means "the latest checkpoint, now": no checkpoint is an immediate error. A
  `checkpoint_dir` that does not exist is an error whenever a count is given
  without a timeout (see `check_checkpoint_dir`). In every other case
  (watching, or a timeout given) it waits for checkpoints as the original does,
  up to `timeout_secs` if positive (else forever), logging while it waits.
  Ending without having evaluated anything is an error too.

  A checkpoint deleted between being found and being read (the trainer's
  `max_to_keep` rotation) is skipped with a warning while watching.

  Returns:
    The results of every call, in order.

  Raises:
    FileNotFoundError: naming `flag` when there was nothing to evaluate.
  """
  check_checkpoint_dir(checkpoint_dir, max_count, timeout_secs, flag)
  if max_count == 1 and timeout_secs <= 0 and latest_checkpoint(checkpoint_dir) is None:
    raise FileNotFoundError(no_checkpoint_message(checkpoint_dir, flag))
  results = []
  for path in checkpoints(checkpoint_dir, interval_secs, max_count, timeout_secs, poll_secs):
    try:
      results.append(fn(path, flag=flag))
    except (FileNotFoundError, ValueError):
      if fileio.exists(path + '.index') or max_count == 1:
        raise
      logging.warning('Checkpoint %s was deleted before it could be read; skipped.', path)
  if not results:
    raise FileNotFoundError(no_checkpoint_message(checkpoint_dir, flag) +
                            f'; waited {timeout_secs:g} s (--checkpoint_timeout_secs)')
  return results
