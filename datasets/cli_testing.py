"""Runs a builder CLI in a fresh process, as a user would (shared by the CLI tests)."""

import os
import subprocess
import sys

_REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_cli(script, *flags):
  """Runs `datasets/<script>` with `flags`; returns the CompletedProcess."""
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL='2', PYTHONPATH=_REPO)
  return subprocess.run([sys.executable, os.path.join(_REPO, 'datasets', script), *flags],
                        env=env, capture_output=True, text=True, timeout=120, check=False)


def last_stderr_line(result):
  """The last non-empty stderr line (TensorFlow may log before the error line)."""
  lines = [line for line in result.stderr.splitlines() if line.strip()]
  return lines[-1] if lines else ''
