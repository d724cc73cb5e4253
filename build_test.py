"""The Bazel BUILD files do not drift from the tree.

Bazel itself cannot run here (it downloads its own release and rules_python's
toolchain, and this machine reaches only the package registries), so this test
reads every BUILD file and checks that each Python module, CLI and test beside it
has a target of the right kind, that every listed source exists, that every
in-repo dependency names a defined target, that each BUILD file loads the rules
it uses from rules_python, and that MODULE.bazel's pip hub serves every
third-party package at the version pyproject.toml pins.
"""

import ast
import os
import re

ROOT = os.path.dirname(os.path.abspath(__file__))
_SKIP_DIRS = {'.git', '.venv', 'build', 'runs', '__pycache__', '.ci', 'scripts', 'docs'}
_LOAD = re.compile(r'^load\("@rules_python//python:defs\.bzl", (.*)\)$', re.M)
_PIN = re.compile(r'^([A-Za-z0-9_.-]+)(?:\[[^]]*\])?==([^\s;]+)')
_RULE = re.compile(r'^(py_library|py_binary|py_test|filegroup)\(\s*$')


def _python_dirs():
  for directory, subdirs, files in os.walk(ROOT):
    subdirs[:] = sorted(d for d in subdirs if d not in _SKIP_DIRS and not d.endswith('.egg-info')
                        and d != 'testdata')
    if any(f.endswith('.py') for f in files):
      yield directory


def _targets(build_path):
  """[(kind, name, srcs, deps)] of a BUILD file, read as the Python it resembles."""
  tree = ast.parse(open(build_path, encoding='utf-8').read(), build_path)
  targets = []
  for node in tree.body:
    if isinstance(node, ast.Expr) and isinstance(node.value, ast.Call):
      call = node.value
      kind = getattr(call.func, 'id', None)
      if kind not in ('py_library', 'py_binary', 'py_test', 'filegroup'):
        continue
      fields = {k.arg: k.value for k in call.keywords}
      name = ast.literal_eval(fields['name'])
      srcs = (ast.literal_eval(fields['srcs'])
              if 'srcs' in fields and isinstance(fields['srcs'], ast.List) else [])
      deps = ast.literal_eval(fields['deps']) if 'deps' in fields else []
      targets.append((kind, name, srcs, deps))
  return targets


def _all_targets():
  out = {}
  for directory in _python_dirs():
    build = os.path.join(directory, 'BUILD')
    package = os.path.relpath(directory, ROOT).replace(os.sep, '/')
    package = '' if package == '.' else package
    if os.path.exists(build):
      out[package] = _targets(build)
  return out


def test_every_python_file_has_a_target_of_the_right_kind():
  problems = []
  for directory in _python_dirs():
    build = os.path.join(directory, 'BUILD')
    rel = os.path.relpath(directory, ROOT)
    if not os.path.exists(build):
      problems.append(f'{rel}: no BUILD file')
      continue
    kinds = {src: kind for kind, _, srcs, _ in _targets(build) for src in srcs}
    for name in sorted(os.listdir(directory)):
      if not name.endswith('.py') or (directory == ROOT and name == 'setup.py'):
        continue  # setup.py packages the tree; it is not part of the build.
      if name not in kinds:
        problems.append(f'{os.path.join(rel, name)} has no target in {os.path.join(rel, "BUILD")}')
      elif name.endswith('_test.py') and kinds[name] != 'py_test':
        problems.append(f'{os.path.join(rel, name)} is a test but its target is {kinds[name]}')
  assert not problems, '\n'.join(problems)


def test_sources_exist_and_dependencies_resolve():
  targets = _all_targets()
  defined = {f'//{package}:{name}' for package, items in targets.items()
             for _, name, _, _ in items}
  problems = []
  for package, items in targets.items():
    for _, name, srcs, deps in items:
      for src in srcs:
        if not os.path.exists(os.path.join(ROOT, package, src)):
          problems.append(f'//{package}:{name} lists missing source {src}')
      for dep in deps:
        label = f'//{package}{dep}' if dep.startswith(':') else dep
        if label.startswith('//') and label not in defined:
          problems.append(f'//{package}:{name} depends on undefined {dep}')
  assert not problems, '\n'.join(problems)


def test_command_line_tools_are_binaries():
  root_targets = {name: kind for kind, name, _, _ in _all_targets()['']}
  for cli in ('export', 'segment', 'train', 'eval', 'vis'):
    assert root_targets.get(cli) == 'py_binary', cli


def _normalized(name):
  return re.sub(r'[-_.]+', '_', name).lower()


def test_build_files_load_the_rules_they_use_from_rules_python():
  problems = []
  for directory in _python_dirs():
    build = os.path.join(directory, 'BUILD')
    if not os.path.exists(build):
      continue
    text = open(build, encoding='utf-8').read()
    loaded = set()
    for symbols in _LOAD.findall(text):
      loaded |= {ast.literal_eval(s.strip()) for s in symbols.split(',')}
    used = {kind for kind, _, _, _ in _targets(build) if kind.startswith('py_')}
    if used - loaded:
      problems.append(f'{os.path.relpath(build, ROOT)} uses {sorted(used - loaded)} without '
                      'loading them from @rules_python//python:defs.bzl')
  assert not problems, '\n'.join(problems)


def test_module_serves_every_pinned_package_from_the_lock():
  module = open(os.path.join(ROOT, 'MODULE.bazel'), encoding='utf-8').read()
  assert 'bazel_dep(name = "rules_python"' in module
  assert 'requirements_lock = "//:requirements_lock.txt"' in module
  lock = {}
  for line in open(os.path.join(ROOT, 'requirements_lock.txt'), encoding='utf-8'):
    match = _PIN.match(line.strip())
    if match:
      lock[_normalized(match.group(1))] = match.group(2)
  # pyproject.toml's exact pins (the library, the CPU extra) are the lock's versions.
  pyproject = open(os.path.join(ROOT, 'pyproject.toml'), encoding='utf-8').read()
  pins = {_normalized(m.group(1)): m.group(2)
          for m in (_PIN.match(s) for s in re.findall(r'"([^"]+==[^"]+)"', pyproject)) if m}
  pins.pop('tensorflow', None)  # The GPU extra's wheel; the lock is the CPU environment.
  assert pins and {name: lock.get(name) for name in pins} == pins
  # The third-party target names only packages of the lock.
  third_party = next(deps for _, name, _, deps in _all_targets()['deeplab_dpc']
                     if name == 'third_party')
  hub = {_normalized(dep.split('//')[1]) for dep in third_party}
  assert all(dep.startswith('@pypi//') for dep in third_party)
  assert hub <= set(lock), sorted(hub - set(lock))
  assert {'tensorflow_cpu', 'keras', 'numpy', 'absl_py', 'pillow'} <= hub
