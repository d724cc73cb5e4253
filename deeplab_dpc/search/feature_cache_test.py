"""Feature cache: build, manifest, reuse, refusal on other flags, resume, bad input."""

import json
import os

import numpy as np
import pytest
import tensorflow as tf

from deeplab_dpc.search import feature_cache
from deeplab_dpc.search import proxy_task
from deeplab_dpc.search import testing
from deeplab_dpc.testing import custom_dataset


@pytest.fixture(scope='module')
def data_dir(tmp_path_factory):
  return testing.write_demo_subset(str(tmp_path_factory.mktemp('demo')), num_train=12, num_val=4)


@pytest.fixture(scope='module')
def built(data_dir, tmp_path_factory):
  cache_dir = str(tmp_path_factory.mktemp('cache'))
  config = testing.tiny_cache_config(data_dir, augmentation_copies=2, examples_per_shard=8)
  manifest = feature_cache.build_feature_cache(config, cache_dir)
  return config, cache_dir, manifest


def _arrays(path, manifest, key='features'):
  dtype = np.dtype(manifest['config']['feature_dtype']) if key == 'features' else np.uint8
  out = []
  for record in tf.data.TFRecordDataset(path):
    feature = tf.train.Example.FromString(record.numpy()).features.feature
    out.append(np.frombuffer(feature[key].bytes_list.value[0], dtype))
  return np.stack(out)


def test_manifest_records_flags_counts_and_shapes(built, data_dir):
  config, cache_dir, manifest = built
  assert manifest['complete']
  assert manifest['config']['crop_size'] == [33, 33]
  assert manifest['config']['model_variant'] == 'mobilenet_v2'
  assert manifest['config']['dataset_dir'] == os.path.abspath(data_dir)
  assert manifest['config']['augmentation_copies'] == 2
  assert manifest['checkpoint_fingerprint'] == 'random-init:seed=0:bn-calibrated'
  assert manifest['feature_shape'] == [3, 3, 80]      # Output stride 16 of 33x33.
  assert manifest['label_shape'] == [33, 33]
  assert manifest['splits']['train']['examples'] == 24  # 12 images x K=2.
  assert manifest['splits']['eval']['examples'] == 4
  assert len(manifest['splits']['train']['shards']) == 4  # 2 copies x 2 shards of 8.
  dataset = feature_cache.load_split(cache_dir, manifest, 'train')
  features, label = next(iter(dataset))
  assert features.dtype == tf.float16 and features.shape == (3, 3, 80)
  assert label.shape == (33, 33, 1) and label.dtype == tf.int32
  assert sum(1 for _ in dataset) == 24
  # A random backbone gets calibrated batch norms, so its features do not vanish.
  assert 0.05 < float(tf.reduce_mean(tf.abs(tf.cast(features, tf.float32)))) < 100


def test_augmented_copies_differ(built):
  _, cache_dir, manifest = built
  names = manifest['splits']['train']['shards']
  # Copy 1 of the same images: other scales, crops and flips.
  for key in ('features', 'label'):
    first = _arrays(os.path.join(cache_dir, names[0]), manifest, key)
    second = _arrays(os.path.join(cache_dir, names[2]), manifest, key)
    assert not np.array_equal(first, second)


def test_complete_cache_is_reused(built):
  config, cache_dir, _ = built
  before = {n: os.path.getmtime(os.path.join(cache_dir, n)) for n in os.listdir(cache_dir)}
  feature_cache.build_feature_cache(config, cache_dir)
  after = {n: os.path.getmtime(os.path.join(cache_dir, n)) for n in os.listdir(cache_dir)}
  assert before == after


@pytest.mark.parametrize('change, flag', [
    (dict(crop_size=(65, 65)), '--train_crop_size'),
    (dict(augmentation_copies=3), '--proxy_augmentation_copies'),
    (dict(feature_dtype='float32'), '--feature_dtype'),
    (dict(depth_multiplier=0.5), '--depth_multiplier'),
    (dict(seed=1), '--tf_initial_checkpoint'),  # Another random backbone.
])
def test_cache_built_with_other_flags_is_refused(built, change, flag):
  config, cache_dir, _ = built
  other = feature_cache.CacheConfig(**{**config.__dict__, **change})
  with pytest.raises(ValueError, match=flag):
    feature_cache.build_feature_cache(other, cache_dir)
  with pytest.raises(ValueError, match=flag):
    feature_cache.open_feature_cache(cache_dir, other)


def test_killed_build_resumes_with_only_the_missing_shards(built, data_dir, tmp_path):
  config, cache_dir, manifest = built
  partial = str(tmp_path / 'cache')
  os.makedirs(partial)
  names = manifest['splits']['train']['shards'] + manifest['splits']['eval']['shards']
  for name in names:
    tf.io.gfile.copy(os.path.join(cache_dir, name), os.path.join(partial, name))
  # A kill mid-build: the manifest still says incomplete, one shard is missing and a
  # temporary file of the shard being written is left behind.
  killed = dict(manifest, complete=False)
  with open(os.path.join(partial, feature_cache.MANIFEST), 'w') as f:
    json.dump(killed, f)
  missing = names[1]
  os.remove(os.path.join(partial, missing))
  with open(os.path.join(partial, '.tmp-' + missing + '-x'), 'wb') as f:
    f.write(b'half a shard')
  kept = {n: os.path.getmtime(os.path.join(partial, n)) for n in names if n != missing}
  with pytest.raises(ValueError, match='incomplete'):
    feature_cache.open_feature_cache(partial, config)
  resumed = feature_cache.build_feature_cache(config, partial)
  assert resumed['complete']
  assert {n: os.path.getmtime(os.path.join(partial, n)) for n in kept} == kept
  for key in ('features', 'label'):  # Every shard is a pure function of the flags.
    np.testing.assert_array_equal(_arrays(os.path.join(partial, missing), manifest, key),
                                  _arrays(os.path.join(cache_dir, missing), manifest, key))
  assert not [n for n in os.listdir(partial) if n.startswith('.tmp-')]
  feature_cache.open_feature_cache(partial, config)


def test_deleted_shard_of_a_complete_cache_is_rebuilt(built, tmp_path):
  config, cache_dir, manifest = built
  copy = str(tmp_path / 'cache')
  tf.io.gfile.makedirs(copy)
  for name in os.listdir(cache_dir):
    tf.io.gfile.copy(os.path.join(cache_dir, name), os.path.join(copy, name))
  os.remove(os.path.join(copy, manifest['splits']['eval']['shards'][0]))
  with pytest.raises(ValueError, match='incomplete'):
    feature_cache.open_feature_cache(copy, config)
  feature_cache.build_feature_cache(config, copy)
  feature_cache.open_feature_cache(copy, config)


def test_missing_cache(tmp_path):
  with pytest.raises(FileNotFoundError, match='--cache_dir'):
    feature_cache.open_feature_cache(str(tmp_path))


def test_empty_validation_split_is_refused(tmp_path):
  data_dir = testing.write_demo_subset(str(tmp_path / 'demo'), num_train=4, num_val=1,
                                       num_shards=1)
  for path in tf.io.gfile.glob(os.path.join(data_dir, 'val-*')):
    with tf.io.TFRecordWriter(path):
      pass  # The split's files are there but hold no record.
  config = testing.tiny_cache_config(data_dir)
  with pytest.raises(ValueError, match='--eval_split=val.*no examples'):
    feature_cache.build_feature_cache(config, str(tmp_path / 'cache'))


def test_empty_validation_cache_is_refused(tmp_path):
  manifest = testing.write_synthetic_cache(str(tmp_path), num_eval=1)
  manifest['splits']['eval']['examples'] = 0
  with open(os.path.join(tmp_path, feature_cache.MANIFEST), 'w') as f:
    json.dump(manifest, f)
  with pytest.raises(ValueError, match='eval split .* is empty'):
    feature_cache.open_feature_cache(str(tmp_path))


def test_checkpoint_initialises_the_backbone_and_is_fingerprinted(data_dir, tmp_path):
  from deeplab_dpc import checkpoints
  from deeplab_dpc import model as model_lib
  from deeplab_dpc import options
  opts = options.ModelOptions.create(num_classes=6, model_variant='mobilenet_v2',
                                     crop_size='33,33', depth_multiplier=0.25,
                                     aspp_with_batch_norm=False)
  model = model_lib.build_model(opts)
  prefix = checkpoints.save_checkpoint(model, str(tmp_path / 'ckpt' / 'backbone'))
  config = testing.tiny_cache_config(data_dir, tf_initial_checkpoint=prefix,
                                     max_train_examples=2, max_eval_examples=2)
  manifest = feature_cache.build_feature_cache(config, str(tmp_path / 'cache'))
  assert manifest['checkpoint_fingerprint'].startswith('sha1:')
  assert manifest['config']['tf_initial_checkpoint'] == os.path.abspath(prefix)
  # The cached features are that backbone's.
  features, _ = next(iter(feature_cache.load_split(str(tmp_path / 'cache'), manifest, 'eval')))
  assert np.isfinite(features.numpy()).all()
  with pytest.raises(FileNotFoundError, match='--tf_initial_checkpoint'):
    feature_cache.checkpoint_fingerprint(str(tmp_path / 'nothing'), 0)


def test_bad_flags():
  with pytest.raises(ValueError, match='--feature_dtype'):
    testing.tiny_cache_config('x', feature_dtype='int8').validate()
  with pytest.raises(ValueError, match='--proxy_augmentation_copies'):
    testing.tiny_cache_config('x', augmentation_copies=0).validate()


def test_a_custom_ignore_label_is_kept_and_ignored_by_the_proxy(tmp_path):
  data_dir = custom_dataset.write(str(tmp_path / 'data'), ignore_label=200)['dir']
  config = testing.tiny_cache_config(data_dir, dataset='custom')
  cache_dir = str(tmp_path / 'cache')
  manifest = feature_cache.build_feature_cache(config, cache_dir)
  assert manifest['ignore_label'] == 200 and manifest['num_classes'] == 3
  labels = _arrays(os.path.join(cache_dir, manifest['splits']['eval']['shards'][0]), manifest,
                   'label').reshape(-1, 33, 33)
  assert set(np.unique(labels)) <= {0, 1, 2, 200}
  assert (labels[:, -1, :] == 200).all()
  # A label of 200 that the proxy did not ignore would make its loss or metric fail.
  result = proxy_task.run_proxy_task(testing.SIMPLE_CELL, cache_dir, manifest,
                                     proxy_task.ProxyConfig(training_number_of_steps=2,
                                                            batch_size=2))
  assert np.isfinite(result['final_loss']) and 0.0 <= result['miou'] <= 1.0
