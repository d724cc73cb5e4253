"""Evaluation: exact metrics, the original's flags and tags, checkpoints, bad labels."""

import glob
import json
import os

import numpy as np
import pytest
import tensorflow as tf

from deeplab_dpc import model as model_lib
from deeplab_dpc.data import demo
from deeplab_dpc.data import image_io
from deeplab_dpc.data import tfrecord
from deeplab_dpc.evaluation import evaluator
from deeplab_dpc.evaluation import test_util

CROP = (145, 145)  # Larger than the 129x129 demo images: padding is exercised.
COUNT = 3


@pytest.fixture(scope='module')
def setup(tmp_path_factory):
  root = tmp_path_factory.mktemp('eval')
  data_dir = str(root / 'data')
  test_util.write_demo_split(data_dir, 'val', COUNT)
  options = test_util.tiny_options(crop_size=CROP)
  model = model_lib.build_model(options)
  test_util.assign_recipe(model, test_util.demo_images('val', COUNT, CROP))
  log_dir = str(root / 'train')
  test_util.write_training_checkpoint(model, log_dir, 100)
  return {'root': root, 'data_dir': data_dir, 'options': options, 'model': model,
          'log_dir': log_dir}


def _config(setup, **kwargs):
  return evaluator.EvalConfig(dataset='demo', dataset_dir=setup['data_dir'], split='val',
                              **kwargs)


def _numpy_reference(model, eval_scales=(1.0,), add_flipped_images=False):
  """Confusion and mIOU computed directly from model.predict, without our metrics code."""
  images = test_util.demo_images('val', COUNT, CROP)
  predictions = np.asarray(model_lib.predict(model, images, eval_scales,
                                             add_flipped_images)['semantic_predictions'])
  confusion = np.zeros((6, 6), np.int64)
  for i in range(COUNT):
    _, label = demo.render('val', i)
    prediction = predictions[i, :label.shape[0], :label.shape[1]]  # Padding is ignored.
    np.add.at(confusion, (label.ravel().astype(np.int64), prediction.ravel()), 1)
  ious = []
  for c in range(6):
    tp = confusion[c, c]
    union = confusion[c].sum() + confusion[:, c].sum() - tp
    if union:
      ious.append(tp / union)
  return confusion, float(np.mean(ious))


def _summaries(eval_logdir):
  values = {}
  for path in glob.glob(os.path.join(eval_logdir, 'events.out.tfevents.*')):
    for event in tf.compat.v1.train.summary_iterator(path):
      for value in event.summary.value:
        values[(value.tag, event.step)] = float(tf.make_ndarray(value.tensor))
  return values


def test_summary_tags_are_the_originals():
  assert evaluator.summary_tag_prefix([1.0], False) == 'miou_1.0'
  assert evaluator.summary_tag_prefix([0.75, 1, 1.25], True) == 'miou_0.75_1.0_1.25_flipped'
  overall, per_class = evaluator.summary_tags((0.5, 1.0), False, 3)
  assert overall == 'eval/miou_0.5_1.0_overall'
  assert per_class == ['eval/miou_0.5_1.0_class_0', 'eval/miou_0.5_1.0_class_1',
                       'eval/miou_0.5_1.0_class_2']


def test_a_training_checkpoint_evaluates_exactly(setup, capsys):
  eval_logdir = str(setup['root'] / 'eval_single')
  runner = evaluator.Evaluator(setup['options'], _config(setup), eval_logdir,
                               show_progress=False)
  result = runner.evaluate_checkpoint(setup['log_dir'], flag='checkpoint_dir')
  runner.close()
  confusion, miou = _numpy_reference(setup['model'])
  np.testing.assert_array_equal(result['confusion_matrix'], confusion)
  assert result['miou'] == pytest.approx(miou, abs=1e-12)
  # Predictions vary: not a constant map (several predicted classes).
  assert 0 < miou < 1 and (np.asarray(confusion).sum(axis=0) > 0).sum() > 1
  assert result['global_step'] == 100 and result['num_images'] == COUNT

  with open(os.path.join(eval_logdir, 'metrics.json')) as f:
    written = json.load(f)
  for key in ('miou', 'per_class_iou', 'class_names', 'pixel_accuracy', 'checkpoint',
              'global_step', 'eval_scales', 'add_flipped_images', 'num_images', 'split',
              'dataset'):
    assert key in written, key
  assert written['miou'] == pytest.approx(miou)
  assert written['checkpoint'].endswith('ckpt-100') and written['eval_scales'] == [1.0]
  assert written['class_names'][1] == 'disc' and len(written['per_class_iou']) == 6
  assert os.path.isfile(os.path.join(eval_logdir, 'metrics-100.json'))

  summaries = _summaries(eval_logdir)
  assert summaries[('eval/miou_1.0_overall', 100)] == pytest.approx(miou, rel=1e-6)
  ground_truth_pixels = confusion.sum(1)
  for c in range(6):
    value = summaries[(f'eval/miou_1.0_class_{c}', 100)]
    if ground_truth_pixels[c]:
      assert value == pytest.approx(written['per_class_iou'][c], rel=1e-6)
    else:
      assert np.isnan(value)  # The original's NaN for a class absent from the labels.

  out = capsys.readouterr().out
  assert 'dot grid' in out and 'mIOU' in out and f'{miou:7.4f}' in out


def test_multi_scale_and_flipping_are_honoured(setup):
  eval_logdir = str(setup['root'] / 'eval_multi')
  scales = (0.75, 1.0, 1.25)
  runner = evaluator.Evaluator(setup['options'],
                               _config(setup, eval_scales=scales, add_flipped_images=True),
                               eval_logdir, show_progress=False, model=setup['model'])
  result = runner.evaluate(checkpoint='in memory', global_step=7)
  runner.close()
  confusion, miou = _numpy_reference(setup['model'], scales, True)
  single, _ = _numpy_reference(setup['model'])
  assert not np.array_equal(confusion, single)
  np.testing.assert_array_equal(result['confusion_matrix'], confusion)
  assert result['miou'] == pytest.approx(miou, abs=1e-12)
  assert result['eval_scales'] == [0.75, 1.0, 1.25] and result['add_flipped_images']
  assert result['summary_tag'] == 'eval/miou_0.75_1.0_1.25_flipped_overall'
  summaries = _summaries(eval_logdir)
  assert summaries[('eval/miou_0.75_1.0_1.25_flipped_overall', 7)] == pytest.approx(
      miou, rel=1e-6)
  assert ('eval/miou_0.75_1.0_1.25_flipped_class_5', 7) in summaries


def test_original_tf1_checkpoint_and_batches(setup):
  prefix = test_util.write_tf1_checkpoint(setup['model'],
                                          str(setup['root'] / 'tf1' / 'model.ckpt-30000'),
                                          global_step=30000)
  runner = evaluator.Evaluator(setup['options'], _config(setup, batch_size=2), None,
                               show_progress=False)
  result = runner.evaluate_checkpoint(prefix)
  confusion, _ = _numpy_reference(setup['model'])
  # 3 images in batches of 2: the last batch is partial.
  np.testing.assert_array_equal(result['confusion_matrix'], confusion)
  assert result['global_step'] == 30000 and result['num_images'] == 3


def test_missing_checkpoint_is_a_clear_error(setup, tmp_path):
  runner = evaluator.Evaluator(setup['options'], _config(setup), str(tmp_path / 'eval'),
                               show_progress=False, model=setup['model'])
  with pytest.raises(FileNotFoundError, match=r'--checkpoint_dir: .* holds no checkpoint'):
    evaluator.run_evaluation_loop(runner, str(tmp_path), max_number_of_evaluations=1)
  with pytest.raises(FileNotFoundError, match=r'--checkpoint_path: no checkpoint at'):
    runner.evaluate_checkpoint(str(tmp_path / 'ckpt-5'))
  results = evaluator.run_evaluation_loop(runner, setup['log_dir'], max_number_of_evaluations=1)
  assert len(results) == 1 and results[0]['global_step'] == 100


def _record(name, label_value, size=6):
  label = np.full((size, size), label_value, np.uint8)
  label[0, 0] = 1
  return tfrecord.encode_example(image_io.encode_png(np.zeros((size, size, 3), np.uint8)),
                                 image_io.encode_png(label), name, size, size)


def _write(directory, records):
  os.makedirs(directory, exist_ok=True)
  with tf.io.TFRecordWriter(os.path.join(directory, 'val-00000-of-00001.tfrecord')) as writer:
    for record in records:
      writer.write(record)


def _zeros(images):
  return np.zeros(images.shape[:3], np.int32)


def test_label_values_beyond_the_class_count(tmp_path):
  # 255 is the ignore label: not counted.
  _write(str(tmp_path / 'ok'), [_record('a', 255)])
  dataset = evaluator.build_dataset(evaluator.EvalConfig('demo', str(tmp_path / 'ok')), (9, 9))
  confusion, count = evaluator.evaluate_dataset(_zeros, dataset, 6)
  assert count == 1 and confusion.matrix.sum() == 1 and confusion.matrix[1, 0] == 1
  # 9 is neither a class of the demo set nor the ignore label: an error naming the file.
  _write(str(tmp_path / 'bad'), [_record('a', 2), _record('b', 9)])
  dataset = evaluator.build_dataset(evaluator.EvalConfig('demo', str(tmp_path / 'bad')), (9, 9))
  with pytest.raises(ValueError, match=r'bad/val-00000-of-00001\.tfrecord record 1 has label '
                                       r'values outside \[0, 6\)'):
    evaluator.evaluate_dataset(_zeros, dataset, 6)


def test_label_values_are_checked_whatever_the_source():
  # Batches from any source (e.g. a tfds adapter) are checked again, naming the image.
  batch = {'image': np.zeros((1, 4, 4, 3), np.float32),
           'label': np.full((1, 4, 4, 1), 7, np.int32),
           'image_name': np.array([b'frankfurt_000000_000294'])}
  dataset = tf.data.Dataset.from_tensors(batch)
  with pytest.raises(ValueError, match=r'image frankfurt_000000_000294: label value 7'):
    evaluator.evaluate_dataset(_zeros, dataset, 6)


def test_image_larger_than_the_eval_crop_size(setup):
  config = _config(setup)
  with pytest.raises(ValueError, match='larger than the eval crop size'):
    evaluator.evaluate_dataset(_zeros, evaluator.build_dataset(config, (65, 129)), 6)


def test_bad_configuration():
  with pytest.raises(ValueError, match='--eval_scales'):
    evaluator.EvalConfig('demo', '/x', eval_scales=())
  with pytest.raises(ValueError, match='--eval_batch_size'):
    evaluator.EvalConfig('demo', '/x', batch_size=0)
  with pytest.raises(ValueError, match='--dataset'):
    evaluator.EvalConfig('nope', '/x')
  with pytest.raises(ValueError, match='model has 5 classes but --dataset=demo has 6'):
    evaluator.Evaluator(test_util.tiny_options(num_classes=5), evaluator.EvalConfig('demo', '/x'))


def test_unreadable_latest_checkpoint_falls_back_with_a_warning(setup, tmp_path, caplog):
  log_dir = str(tmp_path / 'train')
  test_util.write_training_checkpoint(setup['model'], log_dir, 1)
  bad = test_util.write_training_checkpoint(setup['model'], log_dir, 2)
  data_file = glob.glob(bad + '.data-*')[0]
  with open(data_file, 'rb') as f:
    data = bytearray(f.read())
  data[len(data) // 2] ^= 0xFF
  with open(data_file, 'wb') as f:
    f.write(bytes(data))
  runner = evaluator.Evaluator(setup['options'], _config(setup), show_progress=False)
  with caplog.at_level('WARNING'):
    results = evaluator.run_evaluation_loop(runner, log_dir, max_number_of_evaluations=1)
  assert results[0]['checkpoint'].endswith('ckpt-1') and results[0]['global_step'] == 1
  assert any(f'--checkpoint_dir: checkpoint {bad} is unreadable' in r.getMessage()
             and 'evaluating the one before it' in r.getMessage() for r in caplog.records)
  # Alone, it is a one-line error naming it.
  os.remove(os.path.join(log_dir, 'ckpt-1.index'))
  with pytest.raises(ValueError, match=f'--checkpoint_dir: checkpoint {bad} is unreadable: '
                     'variable .*Checksum does not match'):
    evaluator.run_evaluation_loop(runner, log_dir, max_number_of_evaluations=1)
