"""cli.run: user mistakes and a full disk end as one line, exit code 2; bugs keep a traceback."""

import subprocess
import sys

import pytest

from deeplab_dpc import fileio

_PROGRAM = '''
import errno, sys
from deeplab_dpc import cli, fileio
def main(argv):
  kind = argv[1]
  if kind == 'value':
    raise ValueError('--flag must be positive')
  if kind == 'disk_full':
    raise fileio.DiskFullError('/data/model/variables.index')
  if kind == 'enospc':
    raise OSError(errno.ENOSPC, 'No space left on device', '/data/x')
  raise OSError(errno.EIO, 'Input/output error', '/data/x')
cli.run(main)
'''


@pytest.mark.parametrize('kind, line', [
    ('value', 'error: --flag must be positive'),
    ('disk_full', 'error: no space left on /data/model/variables.index'),
    ('enospc', 'error: no space left on /data/x'),
])
def test_user_facing_errors_are_one_line(kind, line):
  result = subprocess.run([sys.executable, '-c', _PROGRAM, kind], capture_output=True,
                          text=True, check=False)
  assert result.returncode == 2
  assert result.stderr.strip() == line


def test_other_os_errors_keep_their_traceback():
  result = subprocess.run([sys.executable, '-c', _PROGRAM, 'eio'], capture_output=True,
                          text=True, check=False)
  assert result.returncode == 1
  assert 'Traceback' in result.stderr


def test_as_disk_full_reads_tensorflow_messages():
  error = fileio.as_disk_full(
      RuntimeError('/ckpt/ckpt-3_temp/part-0.data; No space left on device'), '/ckpt')
  assert str(error) == 'no space left on /ckpt/ckpt-3_temp/part-0.data'
  assert str(fileio.as_disk_full(RuntimeError('No space left on device'), '/ckpt')) == (
      'no space left on /ckpt')
  assert fileio.as_disk_full(RuntimeError('checksum mismatch'), '/ckpt') is None
