"""vis.py: the original's output files from a watched training run; user mistakes."""

import os
import subprocess
import sys

import numpy as np
from PIL import Image

from deeplab_dpc import model as model_lib
from deeplab_dpc.data import colormaps
from deeplab_dpc.data import demo
from deeplab_dpc.evaluation import test_util

ROOT = os.path.dirname(os.path.abspath(__file__))
TINY_FLAGS = ['--dataset=demo', '--model_variant=mobilenet_v2', '--depth_multiplier=0.25',
              '--output_stride=16', '--vis_crop_size=145,161']


def _vis(*flags):
  return subprocess.run([sys.executable, os.path.join(ROOT, 'vis.py'), *flags],
                        capture_output=True, text=True, cwd=ROOT, check=False,
                        env={**os.environ, 'TF_CPP_MIN_LOG_LEVEL': '2'})


def test_visualises_the_latest_checkpoint(tmp_path):
  data_dir, log_dir, vis_dir = (str(tmp_path / n) for n in ('data', 'train', 'vis'))
  test_util.write_demo_split(data_dir, 'val', 2)
  model = model_lib.build_model(test_util.tiny_options(crop_size=(145, 161)))
  images = test_util.demo_images('val', 2, (145, 161))
  test_util.assign_recipe(model, images)
  test_util.write_training_checkpoint(model, log_dir, 3)
  result = _vis(*TINY_FLAGS, f'--dataset_dir={data_dir}', f'--checkpoint_dir={log_dir}',
                f'--vis_logdir={vis_dir}', '--max_number_of_iterations=1',
                '--also_save_raw_predictions', '--colormap_type=person_part')
  assert result.returncode == 0, result.stderr[-3000:]
  predictions = np.asarray(model_lib.predict(model, images)['semantic_predictions'])
  results = os.path.join(vis_dir, 'segmentation_results')
  assert sorted(os.listdir(results)) == sorted(
      f'{i:06d}_{kind}.png' for i in range(2)
      for kind in ('image', 'label', 'prediction', 'side_by_side'))
  for i in range(2):
    prediction = predictions[i, :129, :129]
    raw = np.asarray(Image.open(os.path.join(vis_dir, 'raw_segmentation_results',
                                             demo.image_name('val', i) + '.png')))
    np.testing.assert_array_equal(raw, prediction)
    coloured = np.asarray(Image.open(os.path.join(results, f'{i:06d}_prediction.png')))
    np.testing.assert_array_equal(coloured, colormaps.colorize(prediction, 'person_part'))


def test_no_checkpoint_is_a_one_line_error(tmp_path):
  result = _vis(*TINY_FLAGS, f'--dataset_dir={tmp_path}', f'--checkpoint_dir={tmp_path}',
                f'--vis_logdir={tmp_path / "vis"}', '--max_number_of_iterations=1')
  assert result.returncode == 2
  assert result.stderr.strip().splitlines()[-1].startswith(
      f'error: --checkpoint_dir: {tmp_path} holds no checkpoint')


def test_image_larger_than_the_vis_crop_size_names_the_flag(tmp_path):
  data_dir, log_dir = str(tmp_path / 'data'), str(tmp_path / 'train')
  test_util.write_demo_split(data_dir, 'val', 1)
  model = model_lib.build_model(test_util.tiny_options(crop_size=(65, 65)))
  test_util.write_training_checkpoint(model, log_dir, 3)
  flags = [f for f in TINY_FLAGS if not f.startswith('--vis_crop_size')]
  result = _vis(*flags, '--vis_crop_size=65,65', f'--dataset_dir={data_dir}',
                f'--checkpoint_dir={log_dir}', f'--vis_logdir={tmp_path / "vis"}',
                '--max_number_of_iterations=1')
  assert result.returncode == 2, result.stderr[-3000:]
  assert 'Traceback' not in result.stderr
  last = result.stderr.strip().splitlines()[-1]
  assert last.startswith('error: ') and ('Evaluation image of size 129x129 is larger than the '
                                         'vis crop size 65x65') in last
  assert 'raise --vis_crop_size or set --min_resize_value/--max_resize_value' in last
  assert 'eval_crop_size' not in last
