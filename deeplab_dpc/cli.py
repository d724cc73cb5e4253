"""What every command-line tool shares: user mistakes end as one line, exit code 2."""

import errno
import sys

from absl import app


def run(main) -> None:
  """Runs an absl `main`; ValueError / FileNotFoundError become one stderr line.

  A user mistake (a bad flag value, a missing file) is not a crash, so it gets no
  traceback; nor does a full disk ("no space left on FILE"), which the user fixes
  outside the program. Anything else still raises with its traceback.
  """
  def guarded(argv):
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
  app.run(guarded)
