"""Tests of the synthetic demo dataset."""

import glob
import os

import numpy as np
import pytest

from deeplab_dpc.data import demo
from deeplab_dpc.data import descriptors
from deeplab_dpc.data import tfrecord


def test_render_is_deterministic_and_varied():
  image, label = demo.render('train', 3)
  again_image, again_label = demo.render('train', 3)
  np.testing.assert_array_equal(image, again_image)
  np.testing.assert_array_equal(label, again_label)
  assert image.shape == (129, 129, 3) and image.dtype == np.uint8
  assert not np.array_equal(image, demo.render('train', 4)[0])
  assert not np.array_equal(image, demo.render('val', 3)[0])
  with pytest.raises(ValueError, match='Unknown demo split'):
    demo.render('test', 0)


def test_every_class_appears_at_several_scales():
  areas = {c: [] for c in range(1, descriptors.DEMO.num_classes)}
  for index in range(40):
    label = demo.render('train', index)[1]
    assert label.max() < descriptors.DEMO.num_classes
    for c in areas:
      if (label == c).any():
        areas[c].append(int((label == c).sum()))
  for c, class_areas in areas.items():
    assert len(class_areas) >= 5, descriptors.DEMO_CLASSES[c]
    # Small and large instances both occur.
    assert max(class_areas) > 4 * min(class_areas), descriptors.DEMO_CLASSES[c]


def test_build_writes_identical_bytes(tmp_path):
  first, second = str(tmp_path / 'a'), str(tmp_path / 'b')
  assert demo.build(first, splits=['val'], num_shards=2) == {'val': 80}
  demo.build(second, splits=['val'], num_shards=2)
  names = sorted(os.listdir(first))
  assert names == ['val-00000-of-00002.tfrecord', 'val-00001-of-00002.tfrecord']
  for name in names:
    with open(os.path.join(first, name), 'rb') as a, open(os.path.join(second, name),
                                                           'rb') as b:
      assert a.read() == b.read()
  examples = [e for p in sorted(glob.glob(os.path.join(first, 'val-*')))
              for e in tfrecord.read_examples(p)]
  assert len(examples) == descriptors.DEMO.splits_to_sizes['val']
  assert examples[5]['image_name'] == 'val_00005'
  image, label = demo.render('val', 5)
  np.testing.assert_array_equal(examples[5]['image'], image)
  np.testing.assert_array_equal(examples[5]['label'][..., 0], label)
