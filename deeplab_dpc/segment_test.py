"""segment.py: every image mode the decoder meets, 16-bit images, and one-line mistakes."""

import os
import subprocess
import sys

import numpy as np
from PIL import Image
import pytest
import tensorflow as tf

from deeplab_dpc import model as model_lib
from deeplab_dpc import options as options_lib
from deeplab_dpc import segment
from deeplab_dpc import serving

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CROP = (33, 33)


def _rng():
  return np.random.default_rng(7)


@pytest.fixture(scope='module')
def exports(tmp_path_factory):
  options = options_lib.ModelOptions.create(
      num_classes=3, model_variant='mobilenet_v2', crop_size=CROP, output_stride=16,
      depth_multiplier=0.25)
  model = model_lib.build_model(options)
  root = tmp_path_factory.mktemp('exports')
  return {'fixed': serving.export_saved_model(model, str(root / 'fixed')),
          # The resized larger side (40) can exceed the crop (33).
          'resized': serving.export_saved_model(model, str(root / 'resized'),
                                                min_resize_value=20, max_resize_value=40)}


def _segment(*flags):
  return subprocess.run([sys.executable, os.path.join(ROOT, 'segment.py'), *flags],
                        capture_output=True, text=True, cwd=ROOT, check=False,
                        env={**os.environ, 'TF_CPP_MIN_LOG_LEVEL': '2'})


def _write_16_bit_rgb(path, rgb16):
  with open(path, 'wb') as f:
    f.write(tf.io.encode_png(tf.constant(rgb16)).numpy())


def _cases(tmp_path):
  """[(name, path, expected uint8 RGB)] of one picture in every mode, and its 8-bit twin."""
  rng = _rng()
  gray16 = rng.integers(0, 65536, (20, 30)).astype(np.uint16)
  gray8 = np.repeat((gray16 >> 8).astype(np.uint8)[..., None], 3, -1)
  rgb16 = rng.integers(0, 65536, (20, 30, 3)).astype(np.uint16)
  rgb8 = (rgb16 >> 8).astype(np.uint8)
  cases = []

  def add(name, writer, expected):
    path = str(tmp_path / name)
    writer(path)
    cases.append((name, path, expected))

  add('gray16.png', lambda p: Image.fromarray(gray16).save(p), gray8)
  add('gray16.tif', lambda p: Image.fromarray(gray16).save(p), gray8)
  add('gray16.pgm', lambda p: Image.fromarray(gray16).save(p), gray8)  # Opens as mode I.
  add('rgb16.png', lambda p: _write_16_bit_rgb(p, rgb16), rgb8)
  add('rgba16.png', lambda p: _write_16_bit_rgb(
      p, np.concatenate([rgb16, rgb16[..., :1]], -1)), rgb8)
  add('gray8.png', lambda p: Image.fromarray(gray8[..., 0]).save(p), gray8)
  add('rgb8.png', lambda p: Image.fromarray(rgb8).save(p), rgb8)
  alpha = rng.integers(0, 256, (20, 30)).astype(np.uint8)
  add('rgba.png', lambda p: Image.fromarray(np.dstack([rgb8, alpha])).save(p), rgb8)
  add('la.png', lambda p: Image.fromarray(np.dstack([gray8[..., 0], alpha]), 'LA').save(p),
      gray8)
  palette_image = Image.fromarray(rgb8).quantize(16)
  palette_rgb = np.asarray(palette_image.convert('RGB'))
  add('palette.png', lambda p: palette_image.save(p), palette_rgb)
  add('palette_transparent.png', lambda p: palette_image.save(p, transparency=3), palette_rgb)
  add('palette_transparent.gif', lambda p: palette_image.save(p, transparency=3), palette_rgb)
  bilevel = gray8[..., 0] > 127
  add('bilevel.png', lambda p: Image.fromarray(bilevel).save(p),
      np.repeat(np.where(bilevel, 255, 0).astype(np.uint8)[..., None], 3, -1))
  cmyk = Image.fromarray(rgb8).convert('CMYK')
  add('cmyk.tif', lambda p: cmyk.save(p), np.asarray(cmyk.convert('RGB')))
  return cases


def test_every_mode_reads_as_its_8_bit_rgb(tmp_path):
  for name, path, expected in _cases(tmp_path):
    image = segment.read_rgb(path)
    assert image.dtype == np.uint8 and image.shape == (20, 30, 3), name
    np.testing.assert_array_equal(image, expected, err_msg=name)
    assert segment.image_size(path) == (20, 30), name


def test_modes_really_are_the_ones_named(tmp_path):
  modes = {name: Image.open(path).mode for name, path, _ in _cases(tmp_path)}
  assert modes['gray16.png'] == 'I;16' and modes['gray16.tif'] == 'I;16'
  assert modes['gray16.pgm'] == 'I' and modes['la.png'] == 'LA'
  assert modes['cmyk.tif'] == 'CMYK' and modes['palette_transparent.png'] == 'P'
  assert 'transparency' in Image.open(str(tmp_path / 'palette_transparent.png')).info


@pytest.mark.parametrize('name, writer, message', [
    ('float.tif', lambda p: Image.fromarray(np.zeros((4, 4), np.float32)).save(p),
     r'float.tif is a 32-bit floating-point image \(mode F\)'),
    ('int32.tif', lambda p: Image.fromarray(np.zeros((4, 4), np.int32)).save(p),
     r'int32.tif is a 32-bit integer image \(mode I\)'),
    ('garbage.png', lambda p: open(p, 'wb').write(b'\x89PNG not really'),
     r'garbage.png is not a readable image'),
])
def test_images_without_an_8_bit_meaning_are_refused(tmp_path, name, writer, message):
  path = str(tmp_path / name)
  writer(path)
  with pytest.raises(ValueError, match='--image: .*' + message):
    segment.read_rgb(path)


def test_16_bit_png_predicts_what_the_8_bit_image_predicts(exports, tmp_path):
  gray16 = _rng().integers(0, 65536, (33, 33)).astype(np.uint16)
  Image.fromarray(gray16).save(tmp_path / 'deep.png')
  Image.fromarray((gray16 >> 8).astype(np.uint8)).save(tmp_path / 'shallow.png')
  rgb16 = _rng().integers(0, 65536, (33, 33, 3)).astype(np.uint16)
  _write_16_bit_rgb(str(tmp_path / 'deep_rgb.png'), rgb16)
  Image.fromarray((rgb16 >> 8).astype(np.uint8)).save(tmp_path / 'shallow_rgb.png')
  out = tmp_path / 'out'
  result = _segment(f'--saved_model={exports["fixed"]}', f'--output_dir={out}',
                    *[f'--image={tmp_path / n}.png'
                      for n in ('deep', 'shallow', 'deep_rgb', 'shallow_rgb')])
  assert result.returncode == 0, result.stderr[-2000:]

  def labels(stem):
    return np.asarray(Image.open(out / f'{stem}_labels.png'))

  np.testing.assert_array_equal(labels('deep'), labels('shallow'))
  np.testing.assert_array_equal(labels('deep_rgb'), labels('shallow_rgb'))


def _big_image(tmp_path):
  path = tmp_path / 'big.png'
  Image.fromarray(np.zeros((60, 30, 3), np.uint8)).save(path)
  return path


@pytest.mark.parametrize('case', ['not_a_saved_model', 'output_dir_is_a_file',
                                  'larger_than_the_crop', 'resized_larger_than_the_crop',
                                  'float_image', 'same_stem_twice'])
def test_mistakes_are_one_line_naming_the_culprit(exports, tmp_path, case):
  image = tmp_path / 'street.png'
  Image.fromarray(np.zeros((20, 30, 3), np.uint8)).save(image)
  saved_model, output_dir, images = exports['fixed'], tmp_path / 'out', [image]
  if case == 'not_a_saved_model':
    saved_model = tmp_path / 'empty'
    saved_model.mkdir()
    message = (f'error: --saved_model={saved_model} is not a SavedModel folder (no '
               'saved_model.pb)')
  elif case == 'output_dir_is_a_file':
    output_dir.write_text('precious')
    message = f'error: --output_dir={output_dir} is a file, not a folder'
  elif case == 'larger_than_the_crop':
    images = [_big_image(tmp_path)]
    message = (f'error: --image: {images[0]} is 60x30 (height x width), larger than the '
               "export's crop 33x33; export with --min_resize_value=33 "
               '--max_resize_value=33 to serve images of any size')
  elif case == 'resized_larger_than_the_crop':
    saved_model, images = exports['resized'], [_big_image(tmp_path)]
    message = (f'error: --image: {images[0]} (60x30) cannot be served by {saved_model}: '
               'resized image height exceeds the crop height 33 (lower --max_resize_value or '
               'raise --crop_size; the resized larger side must fit the crop) (it is 40)')
  elif case == 'float_image':
    images = [tmp_path / 'float.tif']
    Image.fromarray(np.zeros((4, 4), np.float32)).save(images[0])
    message = f'error: --image: {images[0]} is a 32-bit floating-point image (mode F)'
  else:
    (tmp_path / 'other').mkdir()
    images.append(tmp_path / 'other' / 'street.png')
    Image.fromarray(np.zeros((20, 30, 3), np.uint8)).save(images[1])
    message = f'error: --image: {image} and {images[1]} would both be written as street'
  result = _segment(f'--saved_model={saved_model}', f'--output_dir={output_dir}',
                    *[f'--image={i}' for i in images])
  assert result.returncode == 2, result.stderr[-2000:]
  assert message in result.stderr
  assert 'Traceback' not in result.stderr
  errors = [line for line in result.stderr.splitlines() if line.startswith('error:')]
  assert len(errors) == 1
  if case == 'output_dir_is_a_file':
    assert output_dir.read_text() == 'precious'
  else:
    assert not output_dir.exists()


def test_damaged_saved_model_is_named(tmp_path):
  folder = tmp_path / 'damaged'
  folder.mkdir()
  (folder / 'saved_model.pb').write_bytes(b'\x00not a protobuf')
  image = tmp_path / 'street.png'
  Image.fromarray(np.zeros((20, 30, 3), np.uint8)).save(image)
  with pytest.raises(ValueError, match=f'--saved_model={folder} is not a readable SavedModel'):
    segment.segment_images(str(folder), [str(image)], str(tmp_path / 'out'))
  assert not (tmp_path / 'out').exists()


@pytest.mark.parametrize('export_options, expected', [
    ({'dataset': {'colormap': [[1, 2, 3], [4, 5, 6]]}, 'model_options': {'num_classes': 2}},
     [[1, 2, 3], [4, 5, 6]]),
    ({'model_options': {'num_classes': 19}}, 'cityscapes'),
    ({'model_options': {'num_classes': 21}}, 'pascal'),
    ({'model_options': {'num_classes': 7}}, 'person_part'),
    ({'model_options': {'num_classes': 6}}, 'demo'),
    ({'model_options': {'num_classes': 3}}, 'pascal'),
    (None, 'pascal'),
])
def test_colours_follow_the_exports_dataset_or_its_class_count(export_options, expected):
  colormap = segment.export_colormap(export_options)
  if isinstance(expected, str):
    assert colormap == expected
  else:
    np.testing.assert_array_equal(colormap, expected)
