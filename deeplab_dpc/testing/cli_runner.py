"""Runs one command-line tool on many argument lists, importing TensorFlow once.

Each run of a tool in its own interpreter spends most of its time importing
TensorFlow and Keras; a test of ten bad flags pays that ten times. Here one child
process imports the tool's module, then forks once per argument list: every run
still starts from an unparsed, untouched process (flags, Keras state, exit code,
stdout and stderr its own), as `python tool.py ARGS` would.

  python -m deeplab_dpc.testing.cli_runner MODULE RUNS_JSON RESULTS_JSON
"""

import dataclasses
import importlib
import json
import os
import subprocess
import sys
import tempfile
import traceback


@dataclasses.dataclass(frozen=True)
class Result:
  """What one run left: as `subprocess.CompletedProcess` for the fields tests read."""
  args: list
  returncode: int
  stdout: str
  stderr: str


def run_many(module: str, argvs: list[list[str]], *, cwd: str, env: dict | None = None,
             timeout: float = 900) -> list[Result]:
  """Runs `module.run()` (a tool of `deeplab_dpc/tools`) once per argument list.

  Args:
    module: The tool's module, e.g. `deeplab_dpc.tools.export`.
    argvs: One list of command-line arguments per run (without the program name).
    cwd: Working folder of every run.
    env: Environment of every run (default: this process's).
    timeout: Seconds for all runs together.

  Returns:
    One `Result` per argument list, in order.
  """
  with tempfile.TemporaryDirectory() as tmp:
    runs, results = os.path.join(tmp, 'runs.json'), os.path.join(tmp, 'results.json')
    with open(runs, 'w', encoding='utf-8') as f:
      json.dump([list(map(str, argv)) for argv in argvs], f)
    driver = subprocess.run([sys.executable, '-m', __name__, module, runs, results], cwd=cwd,
                            env=env, capture_output=True, text=True, timeout=timeout,
                            check=False)
    if driver.returncode != 0 or not os.path.exists(results):
      raise RuntimeError(f'cli_runner could not run {module}:\n{driver.stderr[-3000:]}')
    with open(results, encoding='utf-8') as f:
      return [Result(argv, **r) for argv, r in zip(argvs, json.load(f))]


def _exit_code(error: SystemExit) -> int:
  if error.code is None:
    return 0
  return error.code if isinstance(error.code, int) else 1


def _run_forked(tool, program: str, argv: list[str]) -> dict:
  """One run in a forked child; its exit code and output."""
  with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:
      code = 1
      try:
        os.dup2(out.fileno(), 1)
        os.dup2(err.fileno(), 2)
        sys.argv = [program, *argv]
        tool.run()
        code = 0
      except SystemExit as e:
        code = _exit_code(e)
      except BaseException:  # pylint: disable=broad-except
        traceback.print_exc()
      finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)  # pylint: disable=protected-access
    _, status = os.waitpid(pid, 0)
    out.seek(0)
    err.seek(0)
    return {'returncode': os.waitstatus_to_exitcode(status),
            'stdout': out.read().decode('utf-8', 'replace'),
            'stderr': err.read().decode('utf-8', 'replace')}


def _run_fresh(module: str, argv: list[str]) -> dict:
  """One run in a new interpreter, where there is no fork."""
  done = subprocess.run([sys.executable, '-c', f'import {module} as t; t.run()', *argv],
                        capture_output=True, text=True, check=False)
  return {'returncode': done.returncode, 'stdout': done.stdout, 'stderr': done.stderr}


def main(argv: list[str]) -> None:
  module, runs_path, results_path = argv
  with open(runs_path, encoding='utf-8') as f:
    runs = json.load(f)
  if hasattr(os, 'fork'):
    tool = importlib.import_module(module)
    program = module.rsplit('.', 1)[-1] + '.py'
    results = [_run_forked(tool, program, run) for run in runs]
  else:
    results = [_run_fresh(module, run) for run in runs]
  with open(results_path, 'w', encoding='utf-8') as f:
    json.dump(results, f)


if __name__ == '__main__':
  main(sys.argv[1:])
