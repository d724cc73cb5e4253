"""Tests of the builders' file reading and checks."""

import os

import numpy as np
from PIL import Image
import pytest

from deeplab_dpc.data import image_io


def test_palette_label_reads_as_indices(tmp_path):
  label = np.array([[0, 5], [20, 255]], dtype=np.uint8)
  image = Image.fromarray(label, 'P')
  image.putpalette([7] * 768)  # Colours must not matter, only indices.
  path = str(tmp_path / 'l.png')
  image.save(path)
  _, array, storable = image_io.read_label(path)
  np.testing.assert_array_equal(array, label)
  assert not storable


def test_corrupt_image_names_the_file(tmp_path):
  path = tmp_path / 'broken.png'
  good = image_io.encode_png(np.zeros((4, 4, 3), np.uint8))
  path.write_bytes(good[:20])
  with pytest.raises(ValueError, match='broken.png is corrupt'):
    image_io.read_image(str(path))


def test_missing_file_names_the_list(tmp_path):
  with pytest.raises(FileNotFoundError, match=r'x.jpg \(listed in train.txt\)'):
    image_io.read_image(os.path.join(str(tmp_path), 'x.jpg'), 'train.txt')


def test_rgb_label_rejected(tmp_path):
  path = str(tmp_path / 'rgb.png')
  Image.fromarray(np.zeros((2, 2, 3), np.uint8)).save(path)
  with pytest.raises(ValueError, match='rgb.png has mode RGB'):
    image_io.read_label(path)


def test_checks():
  image_io.check_label_values('l.png', np.array([0, 6, 255]), 7, 255)
  with pytest.raises(ValueError, match=r'l.png has values \[7, 9\]'):
    image_io.check_label_values('l.png', np.array([0, 7, 9, 255]), 7, 255)
  with pytest.raises(ValueError, match='Label l.png is 3x4 but its image i.png is 3x5'):
    image_io.check_same_size('i.png', (3, 5), 'l.png', (3, 4))


def test_png_encoding_is_deterministic():
  array = np.random.default_rng(0).integers(0, 255, (9, 7, 3), dtype=np.uint8)
  assert image_io.encode_png(array) == image_io.encode_png(array.copy())
