"""Atomic file writes: a kill at any moment leaves either the old file or the new one."""

import contextlib
import errno
import os
import re
import tempfile
from typing import Iterator


@contextlib.contextmanager
def atomic_output(path: str) -> Iterator[str]:
  """Yields a temporary path beside `path`; renames it onto `path` on success.

  The temporary name starts with `.tmp-`, so globs for finished files never see it.
  """
  directory = os.path.dirname(os.path.abspath(path))
  os.makedirs(directory, exist_ok=True)
  fd, tmp = tempfile.mkstemp(dir=directory, prefix='.tmp-' + os.path.basename(path) + '-')
  os.close(fd)
  try:
    yield tmp
    os.replace(tmp, path)
  finally:
    if os.path.exists(tmp):
      os.remove(tmp)


def atomic_write(path: str, data: bytes | str) -> None:
  """Writes `data` to `path` atomically."""
  with atomic_output(path) as tmp:
    with open(tmp, 'wb') as f:
      f.write(data.encode('utf-8') if isinstance(data, str) else data)
      f.flush()
      os.fsync(f.fileno())


class DiskFullError(OSError):
  """The disk filled up while writing `filename`; prints as one line naming it."""

  def __init__(self, filename: str):
    super().__init__(errno.ENOSPC, 'No space left on device', filename)

  def __str__(self):
    return f'no space left on {self.filename}'


# TensorFlow's file errors read like '<path>; No space left on device'.
_TF_NO_SPACE = re.compile(r'(\S+?)[;:]? No space left on device')


def as_disk_full(error: Exception, path: str) -> DiskFullError | None:
  """A `DiskFullError` when `error` (OSError or TensorFlow error) says the disk is full.

  Args:
    error: The exception a write raised.
    path: What to name when the error does not name a file.

  Returns:
    The `DiskFullError` naming the file, or None for any other error.
  """
  if isinstance(error, DiskFullError):
    return error
  if isinstance(error, OSError) and error.errno == errno.ENOSPC:
    return DiskFullError(error.filename or path)
  message = getattr(error, 'message', None) or str(error)
  if 'No space left on device' not in message:
    return None
  match = _TF_NO_SPACE.search(message)
  name = match.group(1) if match and os.sep in match.group(1) else path
  return DiskFullError(name)
