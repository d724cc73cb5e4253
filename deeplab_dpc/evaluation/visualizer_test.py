"""Visualisation: the original's files, side-by-side views, raw and resized predictions."""

import os

import numpy as np
from PIL import Image
import pytest

from deeplab_dpc import model as model_lib
from deeplab_dpc.data import colormaps
from deeplab_dpc.data import demo
from deeplab_dpc.evaluation import evaluator
from deeplab_dpc.evaluation import test_util
from deeplab_dpc.evaluation import visualizer

CROP = (145, 161)


def _read(path):
  return np.asarray(Image.open(path))


@pytest.fixture(scope='module')
def setup(tmp_path_factory):
  root = tmp_path_factory.mktemp('vis')
  data_dir = str(root / 'data')
  test_util.write_demo_split(data_dir, 'val', 2)
  options = test_util.tiny_options(crop_size=CROP)
  model = model_lib.build_model(options)
  test_util.assign_recipe(model, test_util.demo_images('val', 2, CROP))
  log_dir = str(root / 'train')
  test_util.write_training_checkpoint(model, log_dir, 5)
  return {'root': root, 'data_dir': data_dir, 'options': options, 'model': model,
          'log_dir': log_dir}


def test_side_by_side():
  a = np.zeros((3, 2, 3), np.uint8)
  b = np.full((3, 4, 3), 9, np.uint8)
  out = visualizer.side_by_side([a, b], gap=1)
  assert out.shape == (3, 7, 3)
  assert (out[:, 2] == 255).all() and (out[:, 3:] == 9).all()
  with pytest.raises(ValueError, match='differ in height'):
    visualizer.side_by_side([a, np.zeros((2, 2, 3), np.uint8)])


def test_checkpoint_visualisation_writes_the_original_files(setup):
  vis_logdir = str(setup['root'] / 'out')
  config = evaluator.EvalConfig('demo', setup['data_dir'], split='val', batch_size=2)
  runner = visualizer.Visualizer(setup['options'], config, vis_logdir, colormap_type='pascal',
                                 also_save_raw_predictions=True, show_progress=False)
  results = visualizer.run_visualization_loop(runner, setup['log_dir'],
                                              max_number_of_iterations=1)
  assert results[0]['num_images'] == 2 and results[0]['checkpoint'].endswith('ckpt-5')

  images = test_util.demo_images('val', 2, CROP)
  predictions = np.asarray(model_lib.predict(setup['model'], images)['semantic_predictions'])
  folder = os.path.join(vis_logdir, 'segmentation_results')
  for i in range(2):
    image, label = demo.render('val', i)
    prediction = predictions[i, :129, :129]  # Padding cropped off.
    np.testing.assert_array_equal(_read(os.path.join(folder, '%06d_image.png' % i)), image)
    np.testing.assert_array_equal(_read(os.path.join(folder, '%06d_prediction.png' % i)),
                                  colormaps.colorize(prediction, 'pascal'))
    np.testing.assert_array_equal(_read(os.path.join(folder, '%06d_label.png' % i)),
                                  colormaps.colorize(label, 'pascal'))
    both = _read(os.path.join(folder, '%06d_side_by_side.png' % i))
    assert both.shape == (129, 3 * 129 + 2 * 4, 3)
    np.testing.assert_array_equal(both[:, :129], image)
    np.testing.assert_array_equal(both[:, -129:], colormaps.colorize(prediction, 'pascal'))
    raw = _read(os.path.join(vis_logdir, 'raw_segmentation_results',
                             demo.image_name('val', i) + '.png'))
    np.testing.assert_array_equal(raw, prediction)
  assert len(set(np.unique(predictions[:, :129, :129]))) > 2


def test_resized_predictions_go_back_to_the_original_size(setup, tmp_path):
  # min_resize_value shrinks the 129x129 images to 65x65; predictions come back at 129x129.
  config = evaluator.EvalConfig('demo', setup['data_dir'], split='val', min_resize_value=65,
                                max_resize_value=65)
  dataset = evaluator.build_dataset(config, (65, 65))
  shrunk = np.zeros((65, 65), np.int32)
  shrunk[:, 33:] = 4

  def predict(images):
    assert images.shape[1:3] == (65, 65)
    return np.repeat(shrunk[None], images.shape[0], 0)
  count = visualizer.visualize_dataset(predict, dataset, str(tmp_path), 'person_part', config,
                                       also_save_raw_predictions=True)
  assert count == 2
  raw = _read(os.path.join(str(tmp_path), 'raw_segmentation_results',
                    demo.image_name('val', 0) + '.png'))
  assert raw.shape == (129, 129)
  assert (raw[:, :64] == 0).all() and (raw[:, 68:] == 4).all()
  image = _read(os.path.join(str(tmp_path), 'segmentation_results', '000000_image.png'))
  assert image.shape == (65, 65, 3)


def test_bad_colormap_and_missing_logdir(setup):
  config = evaluator.EvalConfig('demo', setup['data_dir'])
  with pytest.raises(ValueError, match='--colormap_type=.nope. is not one of'):
    visualizer.Visualizer(setup['options'], config, '/tmp/x', colormap_type='nope',
                          model=setup['model'])
  with pytest.raises(ValueError, match='--vis_logdir is required'):
    visualizer.Visualizer(setup['options'], config, '', model=setup['model'])
  with pytest.raises(ValueError, match='model has 6 classes but --dataset=pascal_voc_seg has 21'):
    visualizer.Visualizer(setup['options'], evaluator.EvalConfig('pascal_voc_seg',
                                                                 setup['data_dir']),
                          '/tmp/x', model=setup['model'])
  runner = visualizer.Visualizer(setup['options'], config, '/tmp/x', colormap_type='',
                                 model=setup['model'])
  assert runner.colormap_type == 'demo'
