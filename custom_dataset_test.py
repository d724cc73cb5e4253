"""A folder with dataset_info.json, end to end through the CLIs, and its mistakes.

train, eval, vis, export, segment and search take `--dataset_dir` of a custom
folder without `--dataset`; the class count, ignore label, class names and
colours come from the file. Each CLI run costs a TensorFlow start, so the
folder is trained once and every consumer reads that run.
"""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from deeplab_dpc.data import colormaps
from deeplab_dpc.data import dataset_info
from deeplab_dpc.data import descriptors
from deeplab_dpc.testing import custom_dataset
from deeplab_dpc.training import trainer

ROOT = os.path.dirname(os.path.abspath(__file__))
_ENV = {**os.environ, 'TF_CPP_MIN_LOG_LEVEL': '2'}
_MODEL = ['--model_variant=mobilenet_v2', '--depth_multiplier=0.5', '--output_stride=16']


def _run(script, *flags):
  return subprocess.run([sys.executable, os.path.join(ROOT, script), *flags],
                        capture_output=True, text=True, env=_ENV, check=False, cwd=ROOT)


def _train_flags(data_dir, logdir, *extra):
  return [f'--dataset_dir={data_dir}', f'--train_logdir={logdir}', *_MODEL,
          '--train_crop_size=33,33', '--train_batch_size=2', '--training_number_of_steps=2',
          '--base_learning_rate=0.01', '--seed=1', *extra]


@pytest.fixture(scope='module')
def trained(tmp_path_factory):
  """A folder of files built by the builder, and a train.py run on it without --dataset."""
  root = tmp_path_factory.mktemp('custom')
  built = custom_dataset.build_from_files(str(root / 'data'), absent=(1,))
  assert built['info']['class_pixel_counts'] == built['counts']
  assert built['info']['colormap'] == [list(c) for c in custom_dataset.COLORS]
  data_dir = built['dir']
  logdir = str(root / 'train')
  result = _run('train.py', *_train_flags(data_dir, logdir,
                                          '--label_weights_from=median_frequency'))
  assert result.returncode == 0, result.stderr[-3000:]
  return {'root': root, 'data': data_dir, 'logdir': logdir, 'stderr': result.stderr}


def _run_ok(trained, script, out_flag, *flags):
  """Runs a CLI on the trained run with `--<out_flag>` a new folder; returns the folder."""
  out = str(trained['root'] / script.replace('.py', ''))
  result = _run(script, f'--dataset_dir={trained["data"]}', f'--{out_flag}={out}', *_MODEL,
                *flags)
  assert result.returncode == 0, result.stderr[-3000:]
  return out


def _colours(path):
  return {tuple(c) for c in np.asarray(Image.open(path).convert('RGB')).reshape(-1, 3)}


def test_train_reads_the_class_count_from_the_file(trained):
  options = trainer.read_options(trained['logdir'])
  assert options.num_classes == 3
  assert os.path.isfile(os.path.join(trained['logdir'], 'ckpt-2.index'))


def test_train_weights_the_classes_from_the_pixel_counts(trained):
  # Class 1 (grass) is absent from the folder: weight 0, with a warning.
  assert ('--label_weights_from=median_frequency: class 1 (grass) has no pixels in the '
          'split: weight 0') in trained['stderr']
  assert '--label_weights_from=median_frequency: class weights sky ' in trained['stderr']
  assert 'grass 0, cow ' in trained['stderr']


def test_eval_writes_miou_with_the_class_names(trained):
  eval_dir = _run_ok(trained, 'eval.py', 'eval_logdir', '--dataset=custom',
                     f'--checkpoint_dir={trained["logdir"]}', '--eval_crop_size=33,33',
                     '--max_number_of_evaluations=1')
  with open(os.path.join(eval_dir, 'metrics.json'), encoding='utf-8') as f:
    metrics = json.load(f)
  assert metrics['class_names'] == list(custom_dataset.CLASS_NAMES)
  assert len(metrics['per_class_iou']) == 3 and 0.0 <= metrics['miou'] <= 1.0
  assert metrics['num_images'] == 2
  assert os.path.isfile(os.path.join(eval_dir, 'metrics-2.json'))


def test_vis_draws_in_the_dataset_colours(trained):
  vis_dir = _run_ok(trained, 'vis.py', 'vis_logdir', f'--checkpoint_path={trained["logdir"]}',
                    '--vis_crop_size=33,33')
  label = os.path.join(vis_dir, 'segmentation_results', '000000_label.png')
  ignore = tuple(int(c) for c in colormaps.colormap('pascal')[255])
  # Every class is drawn in its own colour (grass is absent from the folder); the
  # ignored last row in PASCAL's colour of 255.
  sky, _, cow = custom_dataset.COLORS
  assert _colours(label) == {sky, cow, ignore}
  prediction = os.path.join(vis_dir, 'segmentation_results', '000000_prediction.png')
  assert _colours(prediction) <= set(custom_dataset.COLORS)


def test_export_then_segment_in_the_dataset_colours(trained):
  export_dir = _run_ok(trained, 'export.py', 'export_path',
                       f'--checkpoint_path={trained["logdir"]}', '--crop_size=33,33')
  with open(os.path.join(export_dir, 'assets', 'deeplab_options.json'), encoding='utf-8') as f:
    settings = json.load(f)
  assert settings['model_options']['num_classes'] == 3
  assert settings['dataset']['class_names'] == list(custom_dataset.CLASS_NAMES)
  image = str(trained['root'] / 'street.png')
  Image.fromarray(np.random.default_rng(0).integers(0, 255, (20, 24, 3), np.uint8)).save(image)
  out_dir = str(trained['root'] / 'segmented')
  result = _run('segment.py', f'--saved_model={export_dir}', f'--image={image}',
                f'--output_dir={out_dir}')
  assert result.returncode == 0, result.stderr[-3000:]
  labels = np.asarray(Image.open(os.path.join(out_dir, 'street_labels.png')))
  coloured = np.asarray(Image.open(os.path.join(out_dir, 'street_prediction.png')))
  assert labels.shape == (20, 24) and coloured.shape == (20, 24, 3)
  np.testing.assert_array_equal(coloured, np.asarray(custom_dataset.COLORS, np.uint8)[labels])


def test_search_runs_two_trials(trained):
  search_dir = str(trained['root'] / 'search')
  result = _run('search.py', f'--dataset_dir={trained["data"]}', f'--search_dir={search_dir}',
                '--model_variant=mobilenet_v2', '--depth_multiplier=0.5',
                '--train_crop_size=33,33', '--proxy_training_number_of_steps=2',
                '--proxy_batch_size=2', '--max_trials=2', '--label_weights_from=inverse_frequency')
  assert result.returncode == 0, result.stderr[-3000:]
  with open(os.path.join(search_dir, 'study.json'), encoding='utf-8') as f:
    weights = json.load(f)['proxy']['label_weights']
  assert len(weights) == 3 and weights[1] == 0.0 and min(weights[0], weights[2]) > 0
  with open(os.path.join(search_dir, 'trials.jsonl'), encoding='utf-8') as f:
    trials = [json.loads(line) for line in f]
  assert len(trials) == 2
  with open(os.path.join(search_dir, 'feature_cache', 'manifest.json'), encoding='utf-8') as f:
    manifest = json.load(f)
  assert manifest['num_classes'] == 3 and manifest['config']['dataset'] == 'custom'


def test_custom_without_the_file_is_one_line_naming_it(tmp_path):
  result = _run('train.py', '--dataset=custom', *_train_flags(str(tmp_path), tmp_path / 'log'))
  assert result.returncode == 2, result.stderr[-3000:]
  assert 'Traceback' not in result.stderr
  assert (f'--dataset=custom reads the dataset from dataset_info.json, but '
          f'--dataset_dir={tmp_path} has no dataset_info.json') in result.stderr


def test_label_weights_from_a_folder_without_pixel_counts_is_refused(tmp_path):
  data_dir = custom_dataset.write(str(tmp_path / 'data'), num_train=2, num_val=1,
                                  with_counts=False)['dir']
  result = _run('train.py', *_train_flags(data_dir, tmp_path / 'log',
                                          '--label_weights_from=median_frequency'))
  assert result.returncode == 2, result.stderr[-3000:]
  assert ("--label_weights_from=median_frequency needs the pixel counts of split 'train' "
          f'(class_pixel_counts of dataset_info.json) but --dataset=custom ({data_dir}/'
          'dataset_info.json) has none') in result.stderr
  assert not os.path.exists(tmp_path / 'log')


def test_num_classes_that_disagree_with_the_file_are_refused(trained, tmp_path):
  result = _run('export.py', f'--dataset_dir={trained["data"]}', '--num_classes=21',
                f'--checkpoint_path={trained["logdir"]}', f'--export_path={tmp_path / "e"}',
                '--crop_size=33,33', *_MODEL)
  assert result.returncode == 2, result.stderr[-3000:]
  assert (f'--num_classes=21 but --dataset=custom ({trained["data"]}/dataset_info.json) has '
          '3 classes') in result.stderr
  assert not os.path.exists(tmp_path / 'e')


def _four_class_dir(path):
  dataset_info.write_dataset_info(str(path), name='four', class_names=['a', 'b', 'c', 'd'],
                                  ignore_label=255, splits_to_sizes={'train': 6, 'val': 2})
  return str(path)


def test_eval_refuses_a_checkpoint_of_another_class_count(trained, tmp_path):
  data_dir = _four_class_dir(tmp_path / 'four')
  result = _run('eval.py', f'--dataset_dir={data_dir}', f'--checkpoint_dir={trained["logdir"]}',
                f'--eval_logdir={tmp_path / "eval"}', '--eval_crop_size=33,33',
                '--max_number_of_evaluations=1', *_MODEL)
  assert result.returncode == 2, result.stderr[-3000:]
  assert (f'--checkpoint_dir={trained["logdir"]} holds a model of 3 classes '
          f'({trained["logdir"]}/model_options.json) but --dataset=custom '
          f'({data_dir}/dataset_info.json) has 4') in result.stderr


def test_train_refuses_an_initial_checkpoint_of_another_class_count(trained, tmp_path):
  data_dir = _four_class_dir(tmp_path / 'four')
  descriptor = descriptors.get_dataset_descriptor(None, data_dir)
  config = trainer.TrainConfig(dataset='custom', dataset_dir=data_dir,
                               train_logdir=str(tmp_path / 'log'), model_options=None,
                               tf_initial_checkpoint=trained['logdir'])
  with pytest.raises(ValueError, match=(
      f'--tf_initial_checkpoint={trained["logdir"]} predicts 3 classes .* but '
      r'--dataset=custom \(.*\) has 4: pass --initialize_last_layer=false')):
    trainer.check_initial_checkpoint_classes(config, descriptor)
  # New logits for the new classes: the original's fine-tuning, still allowed.
  config.initialize_last_layer = False
  trainer.check_initial_checkpoint_classes(config, descriptor)
