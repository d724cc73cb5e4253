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


_GROUPED_PROGRAM = '''
"""Tool docstring."""
from absl import flags
from deeplab_dpc import cli
with cli.flag_group('Model'):
  flags.DEFINE_string('zeta', 'z', 'Last letter.')
  flags.DEFINE_boolean('alpha', True, 'First letter.')
with cli.flag_group('Data'):
  flags.DEFINE_integer('size', 3, 'A size.')
with cli.flag_group('Model'):
  flags.DEFINE_float('beta', 0.5, 'Added to the first group.')
flags.DEFINE_string('loose', None, 'In no group.')
cli.run(lambda argv: print('ran'), __name__)
'''


def test_help_lists_flags_by_group_in_first_use_order():
  result = subprocess.run([sys.executable, '-c', _GROUPED_PROGRAM, '--help'],
                          capture_output=True, text=True, check=False)
  assert result.returncode == 0, result.stderr
  assert result.stdout == '\n'.join([
      'Tool docstring.',
      '',
      'Model:',
      '  --[no]alpha: First letter.',
      "    (default: 'true')",
      '  --beta: Added to the first group.',
      "    (default: '0.5')",
      '    (a number)',
      '  --zeta: Last letter.',
      "    (default: 'z')",
      '',
      'Data:',
      '  --size: A size.',
      "    (default: '3')",
      '    (an integer)',
      '',
      'Other flags:',
      '  --loose: In no group.',
      '',
      'Try --helpfull to get a list of all flags.',
      '']), result.stdout
  # After a `--` it is an argument, not a help flag.
  ran = subprocess.run([sys.executable, '-c', _GROUPED_PROGRAM, '--', '--help'],
                       capture_output=True, text=True, check=False)
  assert ran.returncode == 0 and ran.stdout == 'ran\n', ran.stderr
