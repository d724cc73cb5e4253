"""Cross-check against the official Cityscapes evaluator (cityscapesscripts).

A Cityscapes-layout fixture (label ids, as the publisher ships them) is converted
by our builder, predicted by a deterministic function through our pipeline,
written by our visualiser in the benchmark format (label ids), and scored by
cityscapesscripts' `evalPixelLevelSemanticLabeling`; its class-average IoU must
equal our mIOU over the same pixels.
"""

import os

from cityscapesscripts.evaluation import evalPixelLevelSemanticLabeling as official
from cityscapesscripts.helpers.labels import id2label
import numpy as np
from PIL import Image
import pytest

from deeplab_dpc.data import cityscapes
from deeplab_dpc.evaluation import cityscapes_format
from deeplab_dpc.evaluation import evaluator
from deeplab_dpc.evaluation import visualizer

HEIGHT, WIDTH = 64, 128
STEMS = [('frankfurt', 'frankfurt_000000_000294'), ('frankfurt', 'frankfurt_000001_000538'),
         ('lindau', 'lindau_000003_000019')]


def test_train_ids_map_to_the_original_release_list():
  # The list the original vis.py hard-codes for benchmark submissions.
  assert cityscapes_format.train_id_to_label_id().tolist() == [
      7, 8, 11, 12, 13, 17, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 31, 32, 33]
  np.testing.assert_array_equal(cityscapes_format.to_label_ids(np.array([[0, 18]])), [[7, 33]])
  with pytest.raises(ValueError, match='train ids in'):
    cityscapes_format.to_label_ids(np.array([255]))


def _write_fixture(root):
  """Random images; label ids with blocks of every id 0-33 (ignored ones included)."""
  rng = np.random.default_rng(4)
  for city, stem in STEMS:
    image = rng.integers(0, 256, (HEIGHT, WIDTH, 3), dtype=np.uint8)
    blocks = rng.integers(0, 34, (HEIGHT // 8, WIDTH // 8))
    label_ids = np.kron(blocks, np.ones((8, 8), np.int64)).astype(np.uint8)
    for folder, name, array in (('leftImg8bit', f'{stem}_leftImg8bit.png', image),
                                ('gtFine', f'{stem}_gtFine_labelIds.png', label_ids)):
      path = os.path.join(root, folder, 'val', city, name)
      os.makedirs(os.path.dirname(path), exist_ok=True)
      Image.fromarray(array).save(path)


def _predict(images):
  """Deterministic train-id maps that depend on the pixels: right and wrong in places."""
  images = np.asarray(images)
  return ((images[..., 0] // 16 + images[..., 1] // 64) % 19).astype(np.int32)


def _official_miou(root, predictions_dir, work_dir):
  """The official class-average IoU and class scores (by class name)."""
  args = official.args  # The evaluator's module-level settings, as its main() uses them.
  args.cityscapesPath = root
  args.predictionPath = predictions_dir
  args.predictionWalk = None
  args.evalInstLevelScore = False  # Needs instance ids, not part of mIOU.
  args.evalPixelAccuracy = False
  args.JSONOutput = False
  args.quiet = True
  args.exportFile = os.path.join(work_dir, 'result.json')
  ground_truth = sorted(
      os.path.join(root, 'gtFine', 'val', city, f'{stem}_gtFine_labelIds.png')
      for city, stem in STEMS)
  predictions = [official.getPrediction(args, gt) for gt in ground_truth]
  results = official.evaluateImgLists(predictions, ground_truth, args)
  return official.getScoreAverage(results['classScores'], args), results['classScores']


def test_our_miou_equals_the_official_evaluators(tmp_path):
  root = str(tmp_path / 'cityscapes')
  _write_fixture(root)
  records = str(tmp_path / 'records')
  cityscapes.build(root, records, splits=('val_fine',), num_shards=2)
  # A crop larger than the images: the padding must be cut off exactly.
  config = evaluator.EvalConfig('cityscapes', records, split='val', batch_size=2)
  confusion, count = evaluator.evaluate_dataset(
      _predict, evaluator.build_dataset(config, (72, 136)), 19)
  assert count == 3
  ours = confusion.result()

  vis_dir = str(tmp_path / 'vis')
  visualizer.visualize_dataset(_predict, evaluator.build_dataset(config, (72, 136)), vis_dir,
                               'cityscapes', config, also_save_raw_predictions=True,
                               raw_label_ids=True)
  predictions_dir = os.path.join(vis_dir, 'raw_segmentation_results')
  assert sorted(os.listdir(predictions_dir)) == sorted(f'{s}.png' for _, s in STEMS)
  official_miou, class_scores = _official_miou(root, predictions_dir, str(tmp_path))

  assert 0.01 < ours['miou'] < 0.99
  assert ours['miou'] == pytest.approx(official_miou, abs=1e-12)
  for train_id, label_id in enumerate(cityscapes_format.train_id_to_label_id()):
    official_iou = class_scores[id2label[int(label_id)].name]
    ours_iou = ours['per_class_iou'][train_id]
    if ours_iou is None:
      assert np.isnan(official_iou)
    else:
      assert ours_iou == pytest.approx(official_iou, abs=1e-12)
