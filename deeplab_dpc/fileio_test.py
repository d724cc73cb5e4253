"""fileio on local disk and on TensorFlow's ram:// filesystem (a stand-in for gs://)."""

import os
import uuid

import pytest
import tensorflow as tf

from deeplab_dpc import fileio


@pytest.fixture(params=['local', 'ram'])
def root(request, tmp_path):
  if request.param == 'local':
    yield str(tmp_path)
    return
  path = f'ram://fileio-{uuid.uuid4().hex[:8]}'
  tf.io.gfile.makedirs(path)
  yield path
  tf.io.gfile.rmtree(path)


def test_atomic_write_append_and_read_back(root):
  path = os.path.join(root, 'sub', 'file.txt')
  fileio.atomic_write(path, 'one\n')
  fileio.append_line(path, 'two')
  fileio.append_line(path, 'three\n')
  assert fileio.read_text(path) == 'one\ntwo\nthree\n'
  assert fileio.read_bytes(path) == b'one\ntwo\nthree\n'
  assert fileio.getsize(path) == 14
  # No temporary file is left beside it.
  assert fileio.listdir(os.path.join(root, 'sub')) == ['file.txt']


def test_a_failed_atomic_output_leaves_the_old_file(root):
  path = os.path.join(root, 'kept.json')
  fileio.atomic_write(path, b'old')
  with pytest.raises(RuntimeError):
    with fileio.atomic_output(path) as tmp:
      with fileio.open_file(tmp, 'wb') as f:
        f.write(b'half')
      raise RuntimeError('killed')
  assert fileio.read_bytes(path) == b'old'
  assert fileio.listdir(root) == ['kept.json']


def test_glob_in_matches_names_only_and_hides_dot_files(root):
  folder = os.path.join(root, 'a[1]')
  for name in ('x.json', 'y.json', '.tmp-x.json', 'z.txt'):
    fileio.atomic_write(os.path.join(folder, name), '')
  assert fileio.glob_in(folder, '*.json') == [os.path.join(folder, n)
                                              for n in ('x.json', 'y.json')]
  assert fileio.glob_in(folder, '.tmp-*') == [os.path.join(folder, '.tmp-x.json')]
  assert fileio.glob_in(os.path.join(root, 'missing'), '*') == []


def test_a_file_name_prefix_is_not_a_folder(root):
  # ram:// calls `ckpt-2` a folder once `ckpt-2.index` exists; fileio does not.
  fileio.atomic_write(os.path.join(root, 'ckpt-2.index'), 'x')
  prefix = os.path.join(root, 'ckpt-2')
  assert not fileio.isdir(prefix) and not fileio.exists(prefix)
  assert fileio.isfile(prefix + '.index') and fileio.isdir(root)


def test_replace_directory_swaps_in_the_new_folder(root):
  target = os.path.join(root, 'export')
  fileio.atomic_write(os.path.join(target, 'old.pb'), 'old')
  tmp = fileio.make_temp_dir(root, '.tmp-export-')
  fileio.atomic_write(os.path.join(tmp, 'saved_model.pb'), 'new')
  fileio.atomic_write(os.path.join(tmp, 'variables', 'variables.index'), 'v')
  fileio.replace_directory(tmp, target)
  assert fileio.walk_files(target) == ['saved_model.pb', os.path.join('variables',
                                                                      'variables.index')]
  assert not fileio.exists(tmp)
  assert fileio.listdir(root) == ['export']


def test_url_paths_are_absolute_and_local_ones_are_resolved(tmp_path, monkeypatch):
  monkeypatch.chdir(tmp_path)
  assert fileio.abspath('gs://bucket/dir') == 'gs://bucket/dir'
  assert fileio.abspath('dir') == os.path.join(str(tmp_path), 'dir')
  assert fileio.is_local('/a/b') and not fileio.is_local('ram://a')
