"""File access for local paths and URLs (gs://, ram://, ...), and atomic writes.

Local paths go through `os` (atomic renames, fsync); paths with a scheme go through
`tf.io.gfile`, which reaches every filesystem TensorFlow has (gs:// as the original
release's flags did). On such filesystems an atomic write degrades to writing a hidden
temporary file and renaming it over the target, as atomic as the filesystem's rename.
"""

import builtins
import contextlib
import errno
import fnmatch
import os
import re
import shutil
import tempfile
import uuid
from typing import IO, Iterator


def is_local(path: str) -> bool:
  """Whether `path` is on local disk (no `scheme://`)."""
  return '://' not in str(path)


def _gfile():
  # TensorFlow is imported only for URL paths: the search space, the flag definitions
  # and a fast `--help` (which import this module) stay free of it.
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  return tf.io.gfile


def abspath(path: str) -> str:
  """`os.path.abspath` for local paths; URLs are already absolute."""
  return os.path.abspath(path) if is_local(path) else path


def _listed_in_parent(path: str) -> bool:
  # Some filesystems (ram://) call any prefix of a file name a folder: `ckpt-2` is
  # one when `ckpt-2.index` exists. A real folder is listed in its parent.
  parent, name = os.path.split(path.rstrip('/'))
  if '://' not in parent:
    return True  # A bucket or filesystem root.
  try:
    return name in {n.rstrip('/') for n in _gfile().listdir(parent)}
  except Exception:  # pylint: disable=broad-except
    return False


def _remote_isdir(path: str) -> bool:
  return _gfile().isdir(path) and _listed_in_parent(path)


def exists(path: str) -> bool:
  if is_local(path):
    return os.path.exists(path)
  gfile = _gfile()
  return gfile.exists(path) and (not gfile.isdir(path) or _listed_in_parent(path))


def isdir(path: str) -> bool:
  return os.path.isdir(path) if is_local(path) else _remote_isdir(path)


def isfile(path: str) -> bool:
  if is_local(path):
    return os.path.isfile(path)
  return _gfile().exists(path) and not _gfile().isdir(path)


def islink(path: str) -> bool:
  """Symbolic links exist only on local disk."""
  return is_local(path) and os.path.islink(path)


def lexists(path: str) -> bool:
  return os.path.lexists(path) if is_local(path) else _gfile().exists(path)


def makedirs(path: str) -> None:
  """Creates `path` and its parents; an existing folder is fine."""
  if is_local(path):
    os.makedirs(path, exist_ok=True)
  else:
    _gfile().makedirs(path)


def listdir(path: str) -> list[str]:
  """The sorted names in the folder `path`."""
  if is_local(path):
    return sorted(os.listdir(path))
  # Object stores list sub-folders with a trailing slash.
  return sorted(name.rstrip('/') for name in _gfile().listdir(path))


def glob_in(directory: str, pattern: str) -> list[str]:
  """Sorted paths of the entries of `directory` whose name matches `pattern`.

  The pattern (fnmatch syntax; `glob.escape` its literal parts) applies to the names
  only, so brackets or stars in `directory` need no escaping. As with `glob`, hidden
  names match only a pattern that starts with a dot. A missing folder matches nothing.
  """
  if not isdir(directory):
    return []
  return [os.path.join(directory, name) for name in listdir(directory)
          if fnmatch.fnmatchcase(name, pattern)
          and (pattern.startswith('.') or not name.startswith('.'))]


def open_file(path: str, mode: str = 'r', encoding: str | None = None) -> IO:
  """`open` for local paths, `tf.io.gfile.GFile` for URLs (text modes are UTF-8)."""
  if is_local(path):
    if 'b' in mode:
      return builtins.open(path, mode)
    return builtins.open(path, mode, encoding=encoding or 'utf-8')
  return _gfile().GFile(path, mode)


def remove(path: str) -> None:
  if is_local(path):
    os.remove(path)
  else:
    _gfile().remove(path)


def rmtree(path: str, ignore_errors: bool = False) -> None:
  """Removes the folder `path` and everything in it."""
  if is_local(path):
    shutil.rmtree(path, ignore_errors=ignore_errors)
    return
  try:
    _gfile().rmtree(path)
  except Exception:  # pylint: disable=broad-except
    if not ignore_errors:
      raise


def replace(source: str, target: str) -> None:
  """Renames `source` onto `target`, replacing a file there (atomic on local disk)."""
  if is_local(source):
    os.replace(source, target)
  else:
    _gfile().rename(source, target, overwrite=True)


def getsize(path: str) -> int:
  return os.path.getsize(path) if is_local(path) else _gfile().stat(path).length


def walk_files(root: str) -> list[str]:
  """Every file below the folder `root`, as paths relative to it, sorted."""
  out = []
  for name in listdir(root):
    path = os.path.join(root, name)
    if isdir(path):
      out += [os.path.join(name, sub) for sub in walk_files(path)]
    else:
      out.append(name)
  return out


def make_temp_dir(parent: str, prefix: str) -> str:
  """A new uniquely named folder in `parent` (which is created if need be)."""
  makedirs(parent)
  if is_local(parent):
    return tempfile.mkdtemp(dir=parent, prefix=prefix)
  path = os.path.join(parent, prefix + uuid.uuid4().hex[:12])
  makedirs(path)
  return path


def replace_directory(tmp: str, path: str) -> None:
  """Moves the finished folder `tmp` onto `path`, whatever is there.

  On local disk the old contents are renamed aside first and removed only once
  `tmp` is in place, so a failure in between leaves one of the two complete. Object
  stores have no folder rename: the old folder is removed, then each file moved in.
  """
  if not is_local(path):
    if exists(path):
      rmtree(path)
    for name in walk_files(tmp):
      makedirs(os.path.dirname(os.path.join(path, name)))
      replace(os.path.join(tmp, name), os.path.join(path, name))
    rmtree(tmp)
    return
  if not os.path.lexists(path):
    os.replace(tmp, path)
    return
  aside = tempfile.mkdtemp(dir=os.path.dirname(path), prefix='.old-')
  old = os.path.join(aside, 'old')
  os.replace(path, old)
  try:
    os.replace(tmp, path)
  except BaseException:
    os.replace(old, path)
    shutil.rmtree(aside)
    raise
  shutil.rmtree(aside)


@contextlib.contextmanager
def atomic_output(path: str) -> Iterator[str]:
  """Yields a temporary path beside `path`; renames it onto `path` on success.

  The temporary name starts with `.tmp-`, so globs for finished files never see it.
  Whatever writes it must reach `path`'s filesystem (`open_file`, TensorFlow's
  writers).
  """
  if not is_local(path):
    directory = os.path.dirname(path)
    makedirs(directory)
    tmp = os.path.join(directory, f'.tmp-{os.path.basename(path)}-{uuid.uuid4().hex[:12]}')
    try:
      yield tmp
      replace(tmp, path)
    finally:
      if exists(tmp):
        remove(tmp)
    return
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
  """Writes `data` to `path` atomically (synced to disk on local paths)."""
  data = data.encode('utf-8') if isinstance(data, str) else data
  with atomic_output(path) as tmp:
    with open_file(tmp, 'wb') as f:
      f.write(data)
      if is_local(tmp):
        f.flush()
        os.fsync(f.fileno())


def append_line(path: str, line: str) -> None:
  """Appends one line (and a newline) to a text file, durably.

  Local files are appended in place and synced; on filesystems without appends the
  file is rewritten atomically with the line added.
  """
  text = line.rstrip('\n') + '\n'
  if is_local(path):
    with builtins.open(path, 'a', encoding='utf-8') as f:
      f.write(text)
      f.flush()
      os.fsync(f.fileno())
    return
  old = read_bytes(path) if exists(path) else b''
  atomic_write(path, old + text.encode('utf-8'))


def read_bytes(path: str) -> bytes:
  with open_file(path, 'rb') as f:
    return f.read()


def read_text(path: str) -> str:
  with open_file(path, 'r', encoding='utf-8') as f:
    return f.read()


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
