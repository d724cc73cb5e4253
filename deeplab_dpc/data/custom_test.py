"""Tests of the builder of the user's own dataset (images + masks -> TFRecords)."""

import glob
import json
import logging
import os
import re

import numpy as np
from PIL import Image
import pytest
import tensorflow as tf

from deeplab_dpc.data import custom
from deeplab_dpc.data import dataset_info
from deeplab_dpc.data import tfrecord

CLASS_NAMES = 'background,cat,dog'
# The RGB mask's colours; white marks pixels to ignore.
COLOURS = {'#000000': 0, '#ff0000': 1, '0, 255, 0': 2, '255,255,255': 255}
# 256 colours: PIL writes a shorter palette with fewer bits, which would clip index 255.
PALETTE = [0, 0, 0, 10, 20, 30, 40, 50, 60] + [7] * (253 * 3)


def _save(path, array, mode=None, palette=None):
  image = Image.fromarray(array, mode) if mode else Image.fromarray(array)
  if palette is not None:
    image.putpalette(palette)
  image.save(path)


def _label(rng, height, width, values=(0, 1, 2, 255)):
  return rng.choice(np.asarray(values, np.uint8), size=(height, width))


def write_folder(root, with_lists=True):
  """Writes images/, masks/ (+ lists/) of five pairs, one of each kind the builder reads.

  Returns:
    Dict with the folders, 'color_map' (JSON path), 'labels' (stem -> class ids),
    'pixels' (stem -> expected RGB pixels; None for the JPEGs) and 'root'.
  """
  rng = np.random.default_rng(0)
  folders = {k: os.path.join(root, k) for k in ('images', 'masks', 'lists')}
  for folder in folders.values():
    os.makedirs(folder)
  pixels, labels = {}, {}
  # a: RGB JPEG, grayscale index mask.
  labels['a'] = _label(rng, 10, 14)
  _save(os.path.join(folders['images'], 'a.jpg'), rng.integers(0, 256, (10, 14, 3), np.uint8))
  _save(os.path.join(folders['masks'], 'a.png'), labels['a'])
  pixels['a'] = None
  # b: RGB PNG, palette mask.
  pixels['b'] = rng.integers(0, 256, (12, 9, 3), np.uint8)
  labels['b'] = _label(rng, 12, 9)
  _save(os.path.join(folders['images'], 'b.png'), pixels['b'])
  _save(os.path.join(folders['masks'], 'b.png'), labels['b'], 'P', PALETTE)
  # c: grayscale PNG image, index mask without ignore pixels.
  grey = rng.integers(0, 256, (8, 8), np.uint8)
  pixels['c'] = np.stack([grey] * 3, axis=-1)
  labels['c'] = _label(rng, 8, 8, (0, 2))
  _save(os.path.join(folders['images'], 'c.png'), grey)
  _save(os.path.join(folders['masks'], 'c.png'), labels['c'])
  # d: RGBA PNG image, RGB colour mask.
  rgba = rng.integers(0, 256, (9, 11, 4), np.uint8)
  pixels['d'] = rgba[..., :3]
  labels['d'] = _label(rng, 9, 11)
  colour_of = {v: custom.parse_colour(k) for k, v in COLOURS.items()}
  _save(os.path.join(folders['images'], 'd.png'), rgba)
  _save(os.path.join(folders['masks'], 'd.png'),
        np.asarray([[colour_of[v] for v in row] for row in labels['d']], np.uint8))
  # e: RGB .jpeg, 16-bit index mask.
  labels['e'] = _label(rng, 7, 5, (0, 1))
  _save(os.path.join(folders['images'], 'e.jpeg'), rng.integers(0, 256, (7, 5, 3), np.uint8))
  Image.fromarray(labels['e'].astype(np.uint16)).save(os.path.join(folders['masks'], 'e.png'))
  pixels['e'] = None
  if with_lists:
    _write_list(folders['lists'], 'train', ['a', 'b', 'c'])
    _write_list(folders['lists'], 'val', ['d', 'e'])
  color_map = os.path.join(root, 'colours.json')
  with open(color_map, 'w') as f:
    json.dump(COLOURS, f)
  return dict(folders, color_map=color_map, labels=labels, pixels=pixels, root=root)


def _write_list(list_folder, split, stems):
  with open(os.path.join(list_folder, split + '.txt'), 'w') as f:
    f.write(''.join(s + '\n' for s in stems))


def _build(raw, out, lists=True, **kwargs):
  kwargs.setdefault('class_names', CLASS_NAMES)
  if lists:
    kwargs.setdefault('list_folder', raw['lists'])
  return custom.build(out, raw['images'], raw['masks'], **kwargs)


def _records(out, split):
  """(decoded example, raw tf.train.Example) pairs of a split, in shard order."""
  paths = tfrecord.find_shards(out, split)
  decoded = [e for p in paths for e in tfrecord.read_examples(p)]
  raw = [tf.train.Example.FromString(r.numpy()) for r in tf.data.TFRecordDataset(paths)]
  return list(zip(decoded, raw))


def _counts(labels, stems):
  return np.sum([np.bincount(labels[s].ravel(), minlength=256)[:3] for s in stems],
                axis=0).tolist()


def test_build_with_lists_reads_every_kind_back(tmp_path, caplog):
  raw = write_folder(str(tmp_path / 'raw'))
  out = str(tmp_path / 'out')
  with caplog.at_level(logging.WARNING):
    info = _build(raw, out, color_map=raw['color_map'], dataset_name='pets')
  assert info == dataset_info.read_dataset_info(out)
  assert info['name'] == 'pets'
  assert info['num_classes'] == 3 and info['ignore_label'] == 255
  assert info['class_names'] == ['background', 'cat', 'dog']
  assert info['splits_to_sizes'] == {'train': 3, 'val': 2}
  # With --color_map the colormap is the map's, not the palette mask's.
  assert info['colormap'] == [[0, 0, 0], [255, 0, 0], [0, 255, 0]]
  assert info['class_pixel_counts'] == {'train': _counts(raw['labels'], 'abc'),
                                        'val': _counts(raw['labels'], 'de')}
  assert sorted(os.listdir(out)) == sorted(
      ['dataset_info.json'] + [f'{s}-{i:05d}-of-00004.tfrecord' for s in ('train', 'val')
                               for i in range(4)])
  for split, stems in (('train', 'abc'), ('val', 'de')):
    records = _records(out, split)
    assert [e['image_name'] for e, _ in records] == list(stems)
    for example, record in records:
      stem = example['image_name']
      np.testing.assert_array_equal(example['label'][..., 0], raw['labels'][stem])
      assert example['image'].shape[:2] == raw['labels'][stem].shape
      assert (example['height'], example['width']) == raw['labels'][stem].shape
      feature = record.features.feature
      encoded = feature[tfrecord.IMAGE_ENCODED].bytes_list.value[0]
      image_format = feature[tfrecord.IMAGE_FORMAT].bytes_list.value[0]
      if raw['pixels'][stem] is None:
        # An RGB JPEG is stored as it is, not re-encoded.
        image_path, = glob.glob(os.path.join(raw['images'], stem + '.*'))
        with open(image_path, 'rb') as f:
          assert encoded == f.read()
        assert image_format == b'jpeg'
      else:
        np.testing.assert_array_equal(example['image'], raw['pixels'][stem])
        assert image_format == b'png'
  warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
  assert any('c.png is L, not RGB' in w for w in warnings), warnings
  assert any('d.png is RGBA, not RGB' in w for w in warnings), warnings


def test_seeded_split_and_palette_colormap(tmp_path):
  raw = write_folder(str(tmp_path / 'raw'), with_lists=False)
  os.remove(os.path.join(raw['images'], 'd.png'))
  os.remove(os.path.join(raw['masks'], 'd.png'))
  out = str(tmp_path / 'out')
  info = _build(raw, out, lists=False, class_names=None, num_classes=3, val_fraction=0.5,
                seed=3)
  assert info['class_names'] == ['class_0', 'class_1', 'class_2']
  assert info['splits_to_sizes'] == {'train': 2, 'val': 2}
  assert info['colormap'] == [[0, 0, 0], [10, 20, 30], [40, 50, 60]]
  stems = {split: [e['image_name'] for e, _ in _records(out, split)] for split in ('train', 'val')}
  assert sorted(stems['train'] + stems['val']) == ['a', 'b', 'c', 'e']
  assert info['class_pixel_counts'] == {k: _counts(raw['labels'], v) for k, v in stems.items()}
  # The same seed draws the same split; the seeds do not all draw one split.
  splits = [custom.find_splits(raw['images'], raw['masks'], val_fraction=0.5, seed=seed)[0]
            for seed in (3, 3, 0, 1, 2, 4)]
  assert splits[0] == splits[1] == {'train': stems['train'], 'val': stems['val']}
  assert len({json.dumps(s) for s in splits}) > 1
  # Default 0.1 of 4 pairs still gives a val image; 0 gives train only.
  assert [len(v) for v in custom.find_splits(raw['images'], raw['masks'])[0].values()] == [3, 1]
  assert list(custom.find_splits(raw['images'], raw['masks'], val_fraction=0)[0]) == ['train']


def test_index_masks_only_have_no_colormap(tmp_path):
  raw = write_folder(str(tmp_path / 'raw'))
  for stem in 'bd':
    os.remove(os.path.join(raw['masks'], stem + '.png'))
    _save(os.path.join(raw['masks'], stem + '.png'), raw['labels'][stem])
  _write_list(raw['lists'], 'val', ['d', 'e', 'b'])
  info = _build(raw, str(tmp_path / 'out'), num_shards=1)
  assert 'colormap' not in info
  assert info['splits_to_sizes'] == {'train': 3, 'val': 3}
  assert sorted(os.listdir(tmp_path / 'out')) == [
      'dataset_info.json', 'train-00000-of-00001.tfrecord', 'val-00000-of-00001.tfrecord']


def _rewrite_mask(name, array, mode=None):
  def mutate(raw):
    _save(os.path.join(raw['masks'], name), np.asarray(array, np.uint8), mode)
  return mutate


def _append_line(split, line):
  def mutate(raw):
    with open(os.path.join(raw['lists'], split + '.txt'), 'a') as f:
      f.write(line + '\n')
  return mutate


def _remove(*parts):
  def mutate(raw):
    os.remove(os.path.join(raw[parts[0]], *parts[1:]))
  return mutate


def _write_file(folder, name, content):
  def mutate(raw):
    with open(os.path.join(raw[folder], name), 'w') as f:
      f.write(content)
  return mutate


def _all_binary(raw):
  for stem, label in raw['labels'].items():
    os.remove(os.path.join(raw['masks'], stem + '.png'))
    _save(os.path.join(raw['masks'], stem + '.png'), np.where(label > 0, 255, 0).astype(np.uint8))


def _jpeg_mask(raw):
  os.remove(os.path.join(raw['masks'], 'c.png'))
  _save(os.path.join(raw['masks'], 'c.jpg'), raw['labels']['c'])


def _unknown_colours(raw):
  colours = np.zeros((9, 11, 3), np.uint8)
  colours[0, :7, 2] = np.arange(1, 8)
  _save(os.path.join(raw['masks'], 'd.png'), colours)


_COLOUR_MAP = {'color_map': True}
# (id, mutation of the valid fixture, build arguments, expected message regex).
_BAD_INPUTS = [
    ('missing_mask', _remove('masks', 'b.png'), _COLOUR_MAP,
     r"^No mask b\.png for image .*images/b\.png \(listed in .*lists/train\.txt\) in "
     r"--semantic_segmentation_folder=.*masks\.$"),
    ('missing_image', _append_line('val', 'zz'), _COLOUR_MAP,
     r"^No image for 'zz' \(listed in .*lists/val\.txt\) in --image_folder=.*images "
     r"\(looked for zz\.jpg, zz\.jpeg, zz\.png\)\.$"),
    ('extension_in_list', _append_line('val', 'a.jpg'), _COLOUR_MAP,
     r"^No image for 'a\.jpg' .*; list files hold stems, without the extension\.$"),
    ('jpeg_mask', _jpeg_mask, _COLOUR_MAP,
     r'^No mask c\.png .*found c\.jpg: masks must be PNG \(JPEG compression changes class '
     r'ids\)\.$'),
    ('no_lists_missing_mask', _remove('masks', 'e.png'), dict(_COLOUR_MAP, lists=False),
     r'^No mask e\.png for image .*images/e\.jpeg in --semantic_segmentation_folder'),
    ('no_lists_missing_image', _remove('images', 'a.jpg'), dict(_COLOUR_MAP, lists=False),
     r"^No image for 'a' \(mask .*masks/a\.png\) in --image_folder"),
    ('size_mismatch', _rewrite_mask('a.png', np.zeros((10, 13))), _COLOUR_MAP,
     r'^Label .*masks/a\.png is 10x13 but its image .*images/a\.jpg is 10x14 '
     r'\(height x width\)\.$'),
    ('bad_values', _rewrite_mask('c.png', np.full((8, 8), 7)), _COLOUR_MAP,
     r'^Mask .*masks/c\.png has values \[7\] that are neither a class id \(0-2\) nor the '
     r'ignore label 255 \(values in the mask: \[7\]\): check --num_classes'),
    ('grey_levels', _rewrite_mask('c.png', np.arange(64).reshape(8, 8) * 3), _COLOUR_MAP,
     r'^Mask .*c\.png has values \[3, 6, 9, 12, 15, \.\.\.\] .*grey levels of a colour mask '
     r'saved as grayscale'),
    ('binary_mask', _all_binary, dict(ignore_label=254),
     r'^Mask .*a\.png has values \[255\] .*: a 0/255 binary mask\? use --num_classes=2 and '
     r'save the foreground as 1, .* \(and 4 more file\(s\) with problems\)\.$'),
    ('all_binary', _all_binary, {},
     r'^No mask has a pixel of classes 1-2: every mask holds only 0 and the ignore label 255\. '
     r'0/255 binary masks\?'),
    ('one_based', _rewrite_mask('c.png', np.eye(8) * 2 + 1), _COLOUR_MAP,
     r'^Mask .*c\.png has values \[3\] .*: classes numbered from 1\? ids start at 0'),
    ('rgb_without_map', lambda raw: None, {},
     r'^Mask .*masks/d\.png is an RGB colour mask: pass --color_map=FILE\.json'),
    ('unknown_colours', _unknown_colours, _COLOUR_MAP,
     r'^Mask .*d\.png has 7 colour\(s\) not in --color_map=.*colours\.json: #000001, #000002, '
     r'#000003, #000004, #000005 and 2 more; add them'),
    ('bad_map_entry', _write_file('root', 'colours.json', '{"#000000": 0, "#ff00": 1}'),
     _COLOUR_MAP, r'^--color_map=.*colours\.json: bad entry "#ff00": 1; expected'),
    ('map_class_out_of_range', _write_file('root', 'colours.json', '{"1,2,3": 3}'), _COLOUR_MAP,
     r'^--color_map=.*colours\.json: bad entry "1,2,3": 3;'),
    ('empty_split', _write_file('lists', 'val.txt', '\n'), _COLOUR_MAP,
     r'^Split list .*lists/val\.txt is empty\.$'),
    ('empty_train_split', lambda raw: None, dict(_COLOUR_MAP, lists=False, val_fraction=0.95),
     r'^--val_fraction=0\.95 of 5 image\(s\) leaves an empty train split'),
    ('duplicate_stems', lambda raw: _save(os.path.join(raw['images'], 'a.png'),
                                          np.zeros((10, 14, 3), np.uint8)), _COLOUR_MAP,
     r"^--image_folder=.*images has two images of stem 'a': a\.jpg and a\.png; keep one\.$"),
    ('duplicate_in_list', _append_line('train', 'a'), _COLOUR_MAP,
     r"^.*lists/train\.txt lists 'a' twice\.$"),
    ('unreadable_image', _write_file('images', 'b.png', 'not a png'), _COLOUR_MAP,
     r'^Image file .*images/b\.png is corrupt or not an image'),
    ('two_bad_masks', lambda raw: (_rewrite_mask('c.png', np.full((8, 8), 7))(raw),
                                   _rewrite_mask('a.png', np.zeros((3, 3)))(raw)), _COLOUR_MAP,
     r'^Label .*a\.png is 3x3 .*\(height x width\) \(and 1 more file\(s\) with problems\)\.$'),
    ('no_class_flag', lambda raw: None, dict(_COLOUR_MAP, class_names=None),
     r'^Pass exactly one of --class_names .* and --num_classes .*; got neither\.$'),
    ('both_class_flags', lambda raw: None, dict(_COLOUR_MAP, num_classes=3),
     r'^Pass exactly one of --class_names .* and --num_classes .*; got both\.$'),
    ('ignore_is_a_class', lambda raw: None, dict(_COLOUR_MAP, ignore_label=2),
     r'^--ignore_label=2 is a class id \(there are 3 classes, ids 0-2\)'),
    ('lists_and_val_fraction', lambda raw: None, dict(_COLOUR_MAP, val_fraction=0.2),
     r'^Pass --list_folder or --val_fraction, not both'),
]


@pytest.mark.parametrize('mutate,kwargs,message', [c[1:] for c in _BAD_INPUTS],
                         ids=[c[0] for c in _BAD_INPUTS])
def test_bad_input_is_one_line_and_writes_nothing(tmp_path, mutate, kwargs, message):
  raw = write_folder(str(tmp_path / 'raw'))
  kwargs = dict(kwargs)
  if kwargs.pop('color_map', False):
    kwargs['color_map'] = raw['color_map']
  mutate(raw)
  out = str(tmp_path / 'out')
  with pytest.raises(ValueError) as error:
    _build(raw, out, **kwargs)
  assert '\n' not in str(error.value)
  assert re.search(message, str(error.value)), str(error.value)
  assert not os.path.exists(out)


def test_failed_rebuild_leaves_the_earlier_build_alone(tmp_path):
  raw = write_folder(str(tmp_path / 'raw'))
  out = str(tmp_path / 'out')
  _build(raw, out, color_map=raw['color_map'])
  before = {n: os.path.getmtime(os.path.join(out, n)) for n in os.listdir(out)}
  _rewrite_mask('c.png', np.full((8, 8), 7))(raw)
  with pytest.raises(ValueError, match=r'c\.png has values \[7\]'):
    _build(raw, out, color_map=raw['color_map'])
  assert {n: os.path.getmtime(os.path.join(out, n)) for n in os.listdir(out)} == before
