"""What every command-line tool shares: user mistakes end as one line, exit code 2, and
--help lists every flag a tool accepts under the group it belongs to."""

import contextlib
import errno
import sys
import tempfile

from absl import app
from absl import flags

# absl's help flags; they exit before `main` runs.
_HELP_FLAGS = ('help', 'helpshort', 'helpfull', 'helpxml', '?')
# The ones answered with the tool's grouped flags (--helpfull and --helpxml stay absl's).
_GROUPED_HELP_FLAGS = ('help', 'helpshort', '?')

# --help's group titles, in the order they were first used, each with its flags' names.
_FLAG_GROUPS: dict[str, set[str]] = {}


@contextlib.contextmanager
def flag_group(title: str):
  """--help lists the flags defined inside this `with` under `title`.

  Groups are listed in the order their titles were first used; a title used again
  (e.g. a tool's own data flags next to the shared ones) adds to its group.

  Args:
    title: The heading, e.g. 'Model' or 'Checkpoints and logging'.
  """
  before = set(flags.FLAGS)
  try:
    yield
  finally:
    _FLAG_GROUPS.setdefault(title, set()).update(set(flags.FLAGS) - before)


def _help_words(argv) -> list[str]:
  """The help flags on the command line (before a `--`), without dashes or values."""
  words = []
  for arg in argv[1:]:
    if arg == '--':
      break
    if arg.startswith('-'):
      words.append(arg.lstrip('-').split('=')[0])
  return [word for word in words if word in _HELP_FLAGS]


def _asked_for_help(argv) -> bool:
  return bool(_help_words(argv))


def _render_flag(flag) -> str:
  """One flag as absl's --help shows it: name, help, default and syntax."""
  name = f'--[no]{flag.name}' if flag.boolean else f'--{flag.name}'
  lines = [flags.text_wrap(f'{name}: {flag.help or ""}'.rstrip(), indent='    ',
                           firstline_indent='  ')]
  if flag.default_as_str:
    lines.append(flags.text_wrap(f'(default: {flag.default_as_str})', indent='    '))
  if flag.parser.syntactic_help:
    lines.append(flags.text_wrap(f'({flag.parser.syntactic_help})', indent='    '))
  return '\n'.join(lines)


def grouped_help(tool_module: str) -> str:
  """The --help text of a tool: its docstring, then its key flags by `flag_group`.

  Args:
    tool_module: `__name__` of the module that defines the tool's flags.

  Returns:
    The text: every key flag of the tool (its own and those it adopted with
    `flags.adopt_module_key_flags`), alphabetical within each group, the groups in
    the order their titles were first used, flags outside every group last.
  """
  module = sys.modules[tool_module]
  # absl files the flags of the program's `__main__` module under sys.argv[0].
  key = sys.argv[0] if tool_module == '__main__' else tool_module
  key_flags = {flag.name: flag for flag in flags.FLAGS.get_key_flags_for_module(key)}
  sections = [(module.__doc__ or '').strip()]
  listed = set()
  groups = [*_FLAG_GROUPS.items(), (None, set(key_flags))]
  for title, names in groups:
    names = sorted(set(names) & set(key_flags) - listed)
    if names:
      # A tool's flags outside every group: all of them for a small tool.
      title = title or ('Other flags' if listed else 'Flags')
      listed.update(names)
      sections.append('\n'.join([f'{title}:', *(_render_flag(key_flags[name])
                                                  for name in names)]))
  sections.append('Try --helpfull to get a list of all flags.')
  return '\n\n'.join(section for section in sections if section) + '\n'


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
    tool_module: `__name__` of the module that defines the tool's flags: --help
      lists its key flags, including those it adopted with
      `flags.adopt_module_key_flags`, grouped by `flag_group` (`grouped_help`);
      --helpfull stays absl's.
  """
  if tool_module:
    _present_as_main_module(tool_module)
    if set(_help_words(sys.argv)) & set(_GROUPED_HELP_FLAGS):
      print(grouped_help(tool_module), end='')
      sys.exit(0)
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
