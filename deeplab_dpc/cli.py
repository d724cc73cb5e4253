"""What every command-line tool shares: user mistakes end as one line, exit code 2."""

import errno
import sys
import tempfile

from absl import app
from absl import flags

# absl's help flags; they exit before `main` runs.
_HELP_FLAGS = ('help', 'helpshort', 'helpfull', 'helpxml', '?')


def _asked_for_help(argv) -> bool:
  return any(arg.lstrip('-').split('=')[0] in _HELP_FLAGS
             for arg in argv[1:] if arg.startswith('-'))


def _present_as_main_module(tool_module: str) -> None:
  """Makes --help show `tool_module`'s docstring and key flags.

  absl's --help prints the docstring and key flags of the program's `__main__`
  module; a tool's code lives in a package module run through a console script or a
  three-line shim, so both are copied over to the name absl looks them up by.
  """
  tool = sys.modules[tool_module]
  main = sys.modules['__main__']
  if main is tool:
    return  # `python -m deeplab_dpc.tools.X`: absl already sees the tool itself.
  main.__doc__ = tool.__doc__
  for flag in flags.FLAGS.get_key_flags_for_module(tool_module):
    flags.FLAGS.register_key_flag_for_module(sys.argv[0], flag)


def run(main, tool_module: str | None = None) -> None:
  """Runs an absl `main`; ValueError / FileNotFoundError become one stderr line.

  A user mistake (a bad flag value, a missing file) is not a crash, so it gets no
  traceback; nor does a full disk ("no space left on FILE"), which the user fixes
  outside the program. Anything else still raises with its traceback. --help and
  --helpfull exit 0 (absl's own exit code is 1), as a shell user expects of a
  command that did what was asked.

  Args:
    main: The absl main, called with the arguments left after the flags.
    tool_module: `__name__` of the module that defines the tool's flags, when it is
      not `__main__` (console scripts and shims): --help then lists its key flags,
      including those it adopted with `flags.adopt_module_key_flags`.
  """
  if tool_module:
    _present_as_main_module(tool_module)
  started = []

  def guarded(argv):
    started.append(True)
    try:
      return main(argv)
    except (ValueError, FileNotFoundError) as e:
      print(f'error: {e}', file=sys.stderr)
      sys.exit(2)
    except OSError as e:
      if e.errno != errno.ENOSPC:
        raise
      print(f'error: no space left on {e.filename or "the disk"}', file=sys.stderr)
      sys.exit(2)
  try:
    app.run(guarded)
  except SystemExit as e:
    if not started and e.code == 1 and _asked_for_help(sys.argv):
      sys.exit(0)
    raise


def in_work_dir(work_dir: str, measure):
  """`measure(work_dir)`, or in a temporary folder when `work_dir` is '' (benchmarks).

  A report made in a temporary folder has its `plot` set to None: the file is gone
  with the folder.
  """
  if work_dir:
    return measure(work_dir)
  with tempfile.TemporaryDirectory() as temporary:
    report = measure(temporary)
  report['plot'] = None
  return report
