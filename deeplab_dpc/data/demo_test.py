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


@pytest.mark.parametrize('split', ['train', 'pretrain'])
def test_every_class_appears_at_several_scales(split):
  areas = {c: [] for c in range(1, descriptors.DEMO.num_classes)}
  for index in range(40):
    label = demo.render(split, index)[1]
    assert label.max() < descriptors.DEMO.num_classes
    for c in areas:
      if (label == c).any():
        areas[c].append(int((label == c).sum()))
  for c, class_areas in areas.items():
    assert len(class_areas) >= 5, descriptors.DEMO_CLASSES[c]
    # Small and large instances (task scenes: scenes of few and of large shapes) occur.
    assert max(class_areas) > 1.5 * min(class_areas), descriptors.DEMO_CLASSES[c]
    if split == 'pretrain':
      assert max(class_areas) > 4 * min(class_areas), descriptors.DEMO_CLASSES[c]


def test_task_scenes_hold_one_class_and_pretraining_scenes_mix_them():
  task = [set(np.unique(demo.render('train', i)[1])) - {0} for i in range(30)]
  assert all(len(classes) == 1 for classes in task)
  # Every class is some scene's class.
  assert set().union(*task) == set(range(1, descriptors.DEMO.num_classes))
  pretrain = [set(np.unique(demo.render('pretrain', i)[1])) - {0} for i in range(30)]
  assert sum(len(classes) > 1 for classes in pretrain) > 20
  assert not np.array_equal(demo.render('pretrain_val', 0)[0], demo.render('val', 0)[0])


def test_task_shapes_sit_in_distinct_quadrants(monkeypatch):
  # Every half of a task scene holds some shape's centre: half-image context suffices.
  quadrants, draw = [], demo._shape_mask

  def recording(*args, quadrant=None, **kwargs):
    quadrants.append(quadrant)
    return draw(*args, quadrant=quadrant, **kwargs)

  monkeypatch.setattr(demo, '_shape_mask', recording)
  for i in range(30):
    quadrants.clear()
    demo.render('train', i)
    assert 3 <= len(quadrants) == len(set(quadrants)) <= 4, quadrants
    rows, columns = {q // 2 for q in quadrants}, {q % 2 for q in quadrants}
    assert rows == columns == {0, 1}, quadrants


def test_a_shape_is_centred_in_its_quadrant():
  yy, xx = np.mgrid[0:demo.IMAGE_SIZE, 0:demo.IMAGE_SIZE].astype(np.float64)
  half = demo.IMAGE_SIZE / 2
  for quadrant in range(4):
    for seed in range(5):
      mask = demo._shape_mask(demo.DISC, np.random.default_rng(seed), yy, xx, quadrant=quadrant)
      # A disc's centre is its mask's centroid unless the border cuts it.
      rows, columns = np.nonzero(mask)
      assert rows.size
      if mask[0].any() or mask[-1].any() or mask[:, 0].any() or mask[:, -1].any():
        continue
      assert quadrant // 2 * half <= rows.mean() <= (quadrant // 2 + 1) * half
      assert quadrant % 2 * half <= columns.mean() <= (quadrant % 2 + 1) * half


def test_blobs_look_alike_across_classes():
  # A blob is drawn speckled: its pixels vary far more than a flat shape's, whatever
  # the scene's class, so its own pixels do not tell the class.
  speckled = set()
  for i in range(40):
    image, label = demo.render('val', i)
    kind = int(label.max())
    region = image[label == kind].astype(float)
    if region.std(axis=0).mean() > 20:
      speckled.add(kind)
  assert speckled == set(range(1, descriptors.DEMO.num_classes))


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
