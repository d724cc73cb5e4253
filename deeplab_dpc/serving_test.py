"""serving.export_saved_model: what it may replace, atomicity, permissions, a full disk."""

import errno
import os
import stat

import pytest
import tensorflow as tf

from deeplab_dpc import fileio
from deeplab_dpc import model as model_lib
from deeplab_dpc import options as options_lib
from deeplab_dpc import serving


@pytest.fixture(scope='module')
def model():
  options = options_lib.ModelOptions.create(
      num_classes=3, model_variant='mobilenet_v2', crop_size=(33, 33), output_stride=16,
      depth_multiplier=0.25)
  return model_lib.build_model(options)


def _tree(path):
  """{relative path: bytes} of every file under `path`."""
  out = {}
  for directory, _, files in os.walk(path):
    for name in files:
      full = os.path.join(directory, name)
      with open(full, 'rb') as f:
        out[os.path.relpath(full, path)] = f.read()
  return out


def _serves(path):
  serve = tf.saved_model.load(path).signatures['serving_default']
  out = serve(image=tf.zeros([1, 33, 33, 3], tf.uint8))
  return out['semantic_predictions'].shape == (1, 33, 33)


def test_export_writes_a_recognisable_saved_model_and_replaces_it(model, tmp_path):
  path = str(tmp_path / 'export')
  serving.export_saved_model(model, path)
  assert serving.is_saved_model_export(path)
  assert _serves(path)
  first = _tree(path)
  # A second export replaces the first one without asking.
  serving.export_saved_model(model, path, min_resize_value=33)
  assert _tree(path) != first and _serves(path)
  # Nothing hidden is left beside it.
  assert os.listdir(tmp_path) == ['export']


def test_export_folder_mode_follows_the_umask(model, tmp_path):
  previous = os.umask(0o027)
  try:
    path = str(tmp_path / 'export')
    serving.export_saved_model(model, path)
  finally:
    os.umask(previous)
  assert stat.S_IMODE(os.stat(path).st_mode) == 0o750


def test_empty_folder_is_used(model, tmp_path):
  path = tmp_path / 'export'
  path.mkdir()
  serving.export_saved_model(model, str(path))
  assert serving.is_saved_model_export(str(path))


@pytest.mark.parametrize('layout, shown', [
    ({'notes.txt': b'my notes'}, 'notes.txt'),
    ({'train-00000-of-00002.tfrecord': b'a', 'train-00001-of-00002.tfrecord': b'b'},
     'train-00000-of-00002.tfrecord, train-00001-of-00002.tfrecord'),
    # A previous export with the user's file added is no longer only an export.
    ({'saved_model.pb': b'x', 'assets/deeplab_options.json': b'{}', 'assets/mine.txt': b'y'},
     'assets/mine.txt'),
    ({'saved_model.pb': b'x', 'variables/notes': b'y', 'assets/deeplab_options.json': b'{}'},
     'variables/notes'),
    # A SavedModel from another tool (no deeplab options) is not ours to replace.
    ({'saved_model.pb': b'x'}, 'no saved_model.pb or assets/deeplab_options.json'),
])
def test_folder_with_other_files_is_refused_and_kept(model, tmp_path, layout, shown):
  path = tmp_path / 'export'
  for name, data in layout.items():
    (path / name).parent.mkdir(parents=True, exist_ok=True)
    (path / name).write_bytes(data)
  with pytest.raises(ValueError, match=r'--export_path=.*export holds files that are not part '
                     r'of a SavedModel export \(' + shown.replace('.', r'\.') +
                     r'\); choose another folder or pass --overwrite'):
    serving.export_saved_model(model, str(path))
  assert _tree(str(path)) == layout
  assert os.listdir(tmp_path) == ['export']


def test_file_at_the_path_is_refused_unless_overwrite(model, tmp_path):
  path = tmp_path / 'export'
  path.write_bytes(b'precious')
  with pytest.raises(ValueError, match='--export_path=.* is a file, not a SavedModel folder'):
    serving.export_saved_model(model, str(path))
  assert path.read_bytes() == b'precious'
  serving.export_saved_model(model, str(path), overwrite=True)
  assert serving.is_saved_model_export(str(path))


def test_overwrite_replaces_a_foreign_folder(model, tmp_path):
  path = tmp_path / 'export'
  path.mkdir()
  (path / 'notes.txt').write_text('x')
  serving.export_saved_model(model, str(path), overwrite=True)
  assert serving.is_saved_model_export(str(path))
  assert os.listdir(tmp_path) == ['export']


def test_parent_that_is_a_file_is_named(model, tmp_path):
  (tmp_path / 'file').write_text('x')
  with pytest.raises(ValueError, match=r'--export_path=.*file/export: .*file is a file'):
    serving.export_saved_model(model, str(tmp_path / 'file' / 'export'))


@pytest.mark.parametrize('error', [
    OSError(errno.ENOSPC, 'No space left on device', '/disk/variables/variables.index'),
    tf.errors.ResourceExhaustedError(
        None, None, '/disk/variables/variables.index; No space left on device'),
])
def test_disk_full_keeps_the_previous_export(model, tmp_path, monkeypatch, error):
  path = str(tmp_path / 'export')
  serving.export_saved_model(model, path)
  before = _tree(path)
  real_save = tf.saved_model.save

  def save_then_fill_the_disk(*args, **kwargs):
    real_save(*args, **kwargs)
    raise error

  monkeypatch.setattr(tf.saved_model, 'save', save_then_fill_the_disk)
  with pytest.raises(fileio.DiskFullError) as raised:
    serving.export_saved_model(model, path, min_resize_value=33)
  assert str(raised.value) == 'no space left on /disk/variables/variables.index'
  assert raised.value.errno == errno.ENOSPC
  assert _tree(path) == before and _serves(path)
  assert os.listdir(tmp_path) == ['export']


def test_kill_while_replacing_keeps_one_complete_export(model, tmp_path, monkeypatch):
  path = str(tmp_path / 'export')
  serving.export_saved_model(model, path)
  before = _tree(path)
  real_replace = os.replace

  def failing_final_rename(src, dst):
    # The new export onto the path, once the old one has moved aside.
    if dst == path and '.tmp-export-' in src:
      raise OSError(errno.EIO, 'Input/output error', dst)
    return real_replace(src, dst)

  monkeypatch.setattr(os, 'replace', failing_final_rename)
  with pytest.raises(OSError, match='Input/output error'):
    serving.export_saved_model(model, path, min_resize_value=33)
  monkeypatch.setattr(os, 'replace', real_replace)
  assert _tree(path) == before
  assert os.listdir(tmp_path) == ['export']


def test_is_saved_model_export_reads_only_the_files(tmp_path):
  assert not serving.is_saved_model_export(str(tmp_path / 'missing'))
  (tmp_path / 'assets').mkdir()
  (tmp_path / 'variables').mkdir()
  (tmp_path / 'saved_model.pb').write_bytes(b'')
  (tmp_path / 'assets' / 'deeplab_options.json').write_text('{}')
  (tmp_path / 'variables' / 'variables.data-00000-of-00001').write_bytes(b'')
  assert serving.is_saved_model_export(str(tmp_path))
  (tmp_path / 'variables' / 'variables.data-00000-of-00001.bak').write_bytes(b'')
  assert not serving.is_saved_model_export(str(tmp_path))
