"""eval.py: the contract command on the demo set, the original flags, user mistakes."""

import json
import os
import subprocess
import sys

import numpy as np

from deeplab_dpc import model as model_lib
from deeplab_dpc import options as options_lib
from deeplab_dpc.data import demo
from deeplab_dpc.data import image_io
from deeplab_dpc.data import shard_writer
from deeplab_dpc.data import tfrecord
from deeplab_dpc.evaluation import test_util

ROOT = os.path.dirname(os.path.abspath(__file__))
TINY_FLAGS = ['--dataset=demo', '--model_variant=mobilenet_v2', '--depth_multiplier=0.25',
              '--output_stride=16', '--eval_crop_size=145', '--eval_crop_size=145']


def _eval(*flags):
  return subprocess.run([sys.executable, os.path.join(ROOT, 'eval.py'), *flags],
                        capture_output=True, text=True, cwd=ROOT, check=False,
                        env={**os.environ, 'TF_CPP_MIN_LOG_LEVEL': '2'})


def test_contract_command_on_the_demo_set(tmp_path):
  data_dir, log_dir, eval_dir = (str(tmp_path / n) for n in ('demo', 'train', 'eval'))
  demo.build(data_dir, splits=('val',))
  model = model_lib.build_model(options_lib.ModelOptions.create(
      num_classes=6, model_variant='xception_41', crop_size=(161, 161), output_stride=16))
  test_util.write_training_checkpoint(model, log_dir, 250)
  result = _eval('--dataset=demo', f'--dataset_dir={data_dir}', f'--checkpoint_dir={log_dir}',
                 f'--eval_logdir={eval_dir}', '--model_variant=xception_41', '--output_stride=16',
                 '--eval_crop_size=161,161', '--max_number_of_evaluations=1')
  assert result.returncode == 0, result.stderr[-3000:]
  with open(os.path.join(eval_dir, 'metrics.json')) as f:
    metrics = json.load(f)
  assert 0.0 <= metrics['miou'] <= 1.0
  assert len(metrics['per_class_iou']) == 6 and metrics['num_images'] == 80
  assert metrics['global_step'] == 250 and metrics['checkpoint'].endswith('ckpt-250')
  assert 'mIOU' in result.stdout and 'dot grid' in result.stdout
  assert 'images/s' in result.stderr  # The progress line (logged off a terminal).
  assert any(n.startswith('events.out.tfevents') for n in os.listdir(eval_dir))


def test_original_checkpoint_multi_scale_flipped_and_repeated_flags(tmp_path):
  data_dir = str(tmp_path / 'data')
  test_util.write_demo_split(data_dir, 'val', 3)
  options = test_util.tiny_options(crop_size=(145, 145))
  model = model_lib.build_model(options)
  images = test_util.demo_images('val', 3, (145, 145))
  test_util.assign_recipe(model, images)
  checkpoint = test_util.write_tf1_checkpoint(model, str(tmp_path / 'tf1' / 'model.ckpt'), 9)
  eval_dir = str(tmp_path / 'eval')
  result = _eval(*TINY_FLAGS, f'--dataset_dir={data_dir}', f'--checkpoint_path={checkpoint}',
                 f'--eval_logdir={eval_dir}', '--eval_scales=0.75,1.0',
                 '--eval_scales=1.25', '--add_flipped_images', '--eval_batch_size=2')
  assert result.returncode == 0, result.stderr[-3000:]
  with open(os.path.join(eval_dir, 'metrics.json')) as f:
    metrics = json.load(f)
  assert metrics['eval_scales'] == [0.75, 1.0, 1.25] and metrics['add_flipped_images']
  assert metrics['summary_tag'] == 'eval/miou_0.75_1.0_1.25_flipped_overall'
  assert metrics['global_step'] == 9 and os.path.isfile(os.path.join(eval_dir, 'metrics-9.json'))
  # The same confusion as the model's own multi-scale + flipped predictions.
  predictions = np.asarray(model_lib.predict(model, images, (0.75, 1.0, 1.25),
                                             True)['semantic_predictions'])
  confusion = np.zeros((6, 6), np.int64)
  for i in range(3):
    _, label = demo.render('val', i)
    np.add.at(confusion, (label.ravel().astype(np.int64), predictions[i, :129, :129].ravel()), 1)
  np.testing.assert_array_equal(metrics['confusion_matrix'], confusion)


def test_no_checkpoint_is_a_one_line_error(tmp_path):
  empty = tmp_path / 'empty'
  empty.mkdir()
  result = _eval(*TINY_FLAGS, f'--dataset_dir={tmp_path}', f'--checkpoint_dir={empty}',
                 f'--eval_logdir={tmp_path / "eval"}', '--max_number_of_evaluations=1')
  assert result.returncode == 2, result.stderr[-3000:]
  assert result.stderr.strip().splitlines()[-1] == (
      f'error: --checkpoint_dir: {empty} holds no checkpoint (expected a `checkpoint` index '
      'file naming ckpt-<step> files written by train.py, or an original TF1 checkpoint)')


def test_truncated_shard_is_a_one_line_error_naming_it(tmp_path):
  data_dir = str(tmp_path / 'data')
  shard = test_util.write_demo_split(data_dir, 'val', 3)[0]
  with open(shard, 'rb') as f:
    data = f.read()
  with open(shard, 'wb') as f:
    f.write(data[:len(data) // 2])
  model = model_lib.build_model(test_util.tiny_options())
  log_dir = str(tmp_path / 'train')
  test_util.write_training_checkpoint(model, log_dir, 3)
  result = _eval(*TINY_FLAGS, f'--dataset_dir={data_dir}', f'--checkpoint_dir={log_dir}',
                 f'--eval_logdir={tmp_path / "eval"}', '--max_number_of_evaluations=1')
  assert result.returncode == 2, result.stderr[-3000:]
  assert 'Traceback' not in result.stderr
  assert result.stderr.strip().splitlines()[-1].startswith(
      f'error: {shard}: truncated TFRecord file: record ')


def test_missing_checkpoint_dir_with_a_count_is_a_one_line_error(tmp_path):
  missing = tmp_path / 'typo'
  result = _eval(*TINY_FLAGS, f'--dataset_dir={tmp_path}', f'--checkpoint_dir={missing}',
                 f'--eval_logdir={tmp_path / "eval"}', '--max_number_of_evaluations=3')
  assert result.returncode == 2, result.stderr[-3000:]
  assert 'Traceback' not in result.stderr
  assert result.stderr.strip().splitlines()[-1].startswith(
      f'error: --checkpoint_dir: {missing} does not exist')


def test_garbage_image_bytes_are_a_one_line_error_naming_the_record(tmp_path):
  data_dir = str(tmp_path / 'data')
  label = image_io.encode_png(np.zeros((129, 129), np.uint8))
  records = [b'\xff\xd8\xff' + b'not a jpeg' * 5, b'\x89PNG\r\n\x1a\n' + b'junk' * 5]
  shard = shard_writer.write_split(
      data_dir, 'val', records,
      lambda data: tfrecord.encode_example(data, label, 'x', 129, 129), 1)[0]
  model = model_lib.build_model(test_util.tiny_options())
  log_dir = str(tmp_path / 'train')
  test_util.write_training_checkpoint(model, log_dir, 3)
  result = _eval(*TINY_FLAGS, f'--dataset_dir={data_dir}', f'--checkpoint_dir={log_dir}',
                 f'--eval_logdir={tmp_path / "eval"}', '--max_number_of_evaluations=1')
  assert result.returncode == 2, result.stderr[-3000:]
  assert 'Traceback' not in result.stderr
  assert result.stderr.strip().splitlines()[-1].startswith(
      f'error: {shard} record 0: not a valid DeepLab example: ')
