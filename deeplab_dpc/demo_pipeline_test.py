"""The newcomer path end to end at the CI size: every artefact exists and is valid.

One reduced run of the whole pipeline (about two minutes on 2 CPU cores) is shared
by the tests below; each checks one kind of artefact the way a user would use it.
"""

import json
import math
import os

import numpy as np
import pytest

from deeplab_dpc import cell as cell_lib
from deeplab_dpc import demo_backbone
from deeplab_dpc import demo_pipeline
from deeplab_dpc import search_space
from deeplab_dpc.data import colormaps
from deeplab_dpc.data import demo

# Always answering "background" scores 0.128: from the pretrained backbone even the
# reduced run's 40-step trainings must have learned shapes, not background.
_MIN_REDUCED_MIOU = 0.16


@pytest.fixture(scope='module')
def run(tmp_path_factory):
  output_dir = str(tmp_path_factory.mktemp('demo'))
  config = demo_pipeline.DemoConfig.create(output_dir, reduced=True, seed=0)
  return config, demo_pipeline.run(config)


def test_summary_json_holds_every_path_and_they_exist(run):
  config, summary = run
  with open(os.path.join(config.output_dir, demo_pipeline.SUMMARY_FILE), encoding='utf-8') as f:
    stored = json.load(f)
  assert stored == json.loads(json.dumps(summary))
  paths = stored['paths']
  expected = {'data', 'rerank_data', 'backbone_checkpoint', 'feature_cache', 'search_dir',
              'trials', 'best_cells', 'rerank_report', 'winner_cell', 'random_cells',
              'winner_checkpoint', 'random_checkpoints', 'winner_metrics', 'random_metrics',
              'tensorboard_logdir', 'saved_model', 'pictures'}
  assert set(paths) == expected
  for key in ('data', 'rerank_data', 'feature_cache', 'search_dir', 'tensorboard_logdir',
              'saved_model'):
    assert os.path.isdir(paths[key]), key
  for key in ('trials', 'rerank_report', 'winner_cell', 'winner_metrics'):
    assert os.path.isfile(paths[key]), key
  for key in ('random_cells', 'random_metrics'):
    assert len(paths[key]) == config.num_random_cells
    assert all(os.path.isfile(p) for p in paths[key]), key
  for path in [paths['backbone_checkpoint'], paths['winner_checkpoint']] + \
      paths['random_checkpoints']:
    assert os.path.isfile(path + '.index'), path
  # The demo starts from the shipped pretrained backbone.
  assert paths['backbone_checkpoint'] == demo_backbone.PRETRAINED_CHECKPOINT
  for key in ('image', 'ground_truth', 'prediction', 'labels'):
    assert os.path.isfile(paths['pictures'][key]), key
  assert set(stored['seconds']) == {'data', 'backbone', 'cache', 'search', 'rerank', 'winner',
                                    'random', 'export', 'segment', 'total'}


def test_cells_load_and_the_study_is_complete(run):
  config, summary = run
  paths = summary['paths']
  assert paths['best_cells']
  for path in paths['best_cells'] + paths['random_cells'] + [
      paths['winner_cell'], os.path.join(paths['search_dir'], 'rerank_winner.json')]:
    branches = cell_lib.load_cell(path)
    assert len(branches) == config.num_branches, path
  # The winner is the re-ranked cell; the random cells are others.
  assert cell_lib.load_cell(paths['winner_cell']) == cell_lib.load_cell(
      os.path.join(paths['search_dir'], 'rerank_winner.json'))
  assert summary['cells']['winner'] not in summary['cells']['random']
  for entry, path in zip(summary['miou']['random_cells'], paths['random_cells']):
    assert search_space.cell_hash(entry['cell']) == entry['hash'] == search_space.cell_hash(
        cell_lib.load_cell(path))
  with open(paths['trials'], encoding='utf-8') as f:
    trials = [json.loads(line) for line in f]
  assert len(trials) == config.search_trials
  assert summary['search']['completed'] >= 1
  with open(paths['rerank_report'], encoding='utf-8') as f:
    assert len(json.load(f)['cells']) == config.rerank_top_k


def _filenames(data_dir, split):
  import tensorflow as tf
  from deeplab_dpc.data import pipeline
  names = []
  for record in tf.data.TFRecordDataset(pipeline.list_files(data_dir, split, 'demo')):
    example = tf.train.Example.FromString(record.numpy())
    names.append(example.features.feature['image/filename'].bytes_list.value[0].decode())
  return names


def test_rerank_selects_on_held_out_training_images_not_on_val(run):
  config, summary = run
  rerank_data = summary['paths']['rerank_data']
  fit, held_out = _filenames(rerank_data, 'train'), _filenames(rerank_data, 'val')
  assert len(held_out) == config.rerank_holdout_examples
  assert len(fit) + len(held_out) == 320
  # Both parts come from the demo training images, disjoint; no demo val image is used.
  assert all(name.startswith('train_') for name in fit + held_out)
  assert not set(fit) & set(held_out)
  # The proxy task trains on the fit part and is scored on the held-out part too.
  with open(os.path.join(summary['paths']['feature_cache'], 'manifest.json')) as f:
    manifest = json.load(f)
  assert manifest['config']['dataset_dir'] == os.path.abspath(rerank_data)
  assert manifest['config']['output_stride'] == 8
  # The re-ranked models were evaluated on the held-out part, the final ones on val.
  with open(summary['paths']['rerank_report'], encoding='utf-8') as f:
    report = json.load(f)
  rows = report['cells']
  assert rows
  for row in rows:
    with open(os.path.join(row['workdir'], 'eval', 'metrics.json'), encoding='utf-8') as f:
      metrics = json.load(f)
    assert metrics['miou'] == pytest.approx(row['full_miou'])
    assert metrics['num_images'] == len(held_out), metrics
  with open(summary['paths']['winner_metrics'], encoding='utf-8') as f:
    assert json.load(f)['num_images'] == 80
  # The winner's first final model is its re-ranking training, scored on val.
  winner_row = next(r for r in rows if r['hash'] == report['winner']['hash'])
  assert summary['paths']['winner_checkpoint'] == winner_row['checkpoint']
  assert summary['miou']['winner'] != pytest.approx(winner_row['full_miou'])


def test_miou_values_are_numbers_and_the_winner_learned(run):
  config, summary = run
  miou = summary['miou']
  values = ([miou['backbone'], miou['winner'], miou['random']] + list(miou['reranked'].values())
            + [r['miou'] for r in miou['random_cells']] + [r['miou'] for r in miou['winner_seeds']])
  for value in values:
    assert isinstance(value, float) and math.isfinite(value) and 0.0 <= value <= 1.0, miou
  assert miou['winner'] > _MIN_REDUCED_MIOU, miou
  assert len(miou['random_cells']) == config.num_random_cells
  assert miou['random'] == pytest.approx(np.mean([r['miou'] for r in miou['random_cells']]))
  # The seed noise is the spread of the winner's trainings over its seeds.
  seeds = [r['miou'] for r in miou['winner_seeds']]
  assert [r['seed'] for r in miou['winner_seeds']] == list(range(config.noise_seeds))
  assert seeds[0] == miou['winner']
  assert summary['seed_noise_std'] == pytest.approx(np.std(seeds, ddof=1))
  assert summary['searched_beats_random'] == (
      miou['winner'] - miou['random'] >= 2 * summary['seed_noise_std'] > 0)
  for per_class in [summary['per_class_iou']['winner']] + summary['per_class_iou'][
      'random_cells']:
    assert len(per_class) == len(summary['class_names']) == 6
    assert all(v is None or 0.0 <= v <= 1.0 for v in per_class)
  with open(summary['paths']['winner_metrics'], encoding='utf-8') as f:
    assert json.load(f)['miou'] == pytest.approx(miou['winner'])


def test_saved_model_serves_a_uint8_image(run):
  import tensorflow as tf
  _, summary = run
  serve = tf.saved_model.load(summary['paths']['saved_model']).signatures['serving_default']
  image, label = demo.render('val', 1)
  outputs = serve(image=tf.constant(image[None]))
  predictions = outputs['semantic_predictions']
  assert predictions.dtype == tf.int32 and predictions.shape == (1, 129, 129)
  assert outputs['semantic_probabilities'].dtype == tf.float32
  assert outputs['semantic_probabilities'].shape == (1, 129, 129, 6)
  values = predictions.numpy()
  assert values.min() >= 0 and values.max() < 6
  # Better than always "background" on this image's pixels.
  assert (values[0] == label).mean() > 0.5
  # Exported with in-graph resizing: another size works too.
  small = serve(image=tf.constant(image[None, :100, :77]))['semantic_predictions']
  assert small.shape == (1, 100, 77)


def test_pictures_decode(run):
  from PIL import Image
  _, summary = run
  pictures = summary['paths']['pictures']
  with Image.open(pictures['prediction']) as picture:
    assert picture.format == 'PNG' and picture.size == (129, 129)
    coloured = np.asarray(picture.convert('RGB'))
  with Image.open(pictures['labels']) as labels:
    labels = np.asarray(labels)
  assert labels.shape == (129, 129) and labels.max() < 6
  # The coloured picture is the raw prediction in the demo palette.
  np.testing.assert_array_equal(coloured, colormaps.colorize(labels, 'demo'))
  with Image.open(pictures['ground_truth']) as truth:
    np.testing.assert_array_equal(np.asarray(truth.convert('RGB')),
                                  colormaps.colorize(demo.render('val', 0)[1], 'demo'))
  with Image.open(pictures['image']) as image:
    np.testing.assert_array_equal(np.asarray(image.convert('RGB')), demo.render('val', 0)[0])


def test_summary_text_names_every_artefact(run):
  _, summary = run
  text = demo_pipeline.format_summary(summary)
  for needle in (summary['paths']['saved_model'], summary['paths']['winner_cell'],
                 summary['paths']['trials'], 'tensorboard --logdir=', 'dot grid', 'random 1',
                 'seed noise std', 'Spearman rho'):
    assert needle in text, needle


def test_chance_miou_is_always_background_on_demo_val():
  background = np.mean([(demo.render('val', i)[1] == 0).mean() for i in range(80)])
  assert demo_pipeline.CHANCE_MIOU == pytest.approx(background / 6, abs=5e-4)


def test_config_errors_name_the_field(tmp_path):
  with pytest.raises(ValueError, match='--output_dir'):
    demo_pipeline.DemoConfig.create('')
  with pytest.raises(ValueError, match='--seed'):
    demo_pipeline.DemoConfig.create(str(tmp_path), seed=-1)
  with pytest.raises(ValueError, match='train_crop_size'):
    demo_pipeline.DemoConfig.create(str(tmp_path), train_crop_size=(64, 64))
  with pytest.raises(ValueError, match='rerank_holdout_examples'):
    demo_pipeline.DemoConfig.create(str(tmp_path), rerank_holdout_examples=320)
  with pytest.raises(ValueError, match='unknown field'):
    demo_pipeline.DemoConfig.create(str(tmp_path), trials=3)
  reduced = demo_pipeline.DemoConfig.create(str(tmp_path), reduced=True)
  full = demo_pipeline.DemoConfig.create(str(tmp_path))
  assert reduced.search_trials < full.search_trials
  assert reduced.full_steps < full.full_steps
  with pytest.raises(ValueError, match='noise_seeds'):
    demo_pipeline.DemoConfig.create(str(tmp_path), noise_seeds=1)


def test_a_missing_backbone_names_the_flag_and_file(tmp_path):
  config = demo_pipeline.DemoConfig.create(str(tmp_path / 'out'), reduced=True,
                                           backbone_checkpoint=str(tmp_path / 'none.ckpt'))
  with pytest.raises(FileNotFoundError, match=r'--backbone_checkpoint=.*none\.ckpt'):
    demo_pipeline.run(config)
