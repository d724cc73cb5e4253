"""Tests of the demo tfds builder and of reading it through the pipeline."""

import numpy as np
import pytest
import tensorflow_datasets as tfds

from deeplab_dpc.data import demo
from deeplab_dpc.data import demo_tfds  # pylint: disable=unused-import  (registers the builder)
from deeplab_dpc.data import pipeline


@pytest.fixture(scope='module')
def data_dir(tmp_path_factory):
  path = str(tmp_path_factory.mktemp('tfds'))
  tfds.builder(demo_tfds.TFDS_NAME, data_dir=path).download_and_prepare()
  return path


def test_tfds_load_gives_the_demo_examples(data_dir):
  dataset, info = tfds.load('deeplab_dpc_demo', split='val', data_dir=data_dir, with_info=True)
  assert info.splits['train'].num_examples == 320
  assert info.splits['val'].num_examples == 80
  examples = {e['image_id'].decode(): e for e in tfds.as_numpy(dataset)}
  assert len(examples) == 80
  image, label = demo.render('val', 7)
  np.testing.assert_array_equal(examples['val_00007']['image'], image)
  np.testing.assert_array_equal(examples['val_00007']['segmentation_label'][..., 0], label)


def test_pipeline_reads_a_tfds_source(data_dir):
  dataset = pipeline.build_dataset('demo', 'tfds:deeplab_dpc_demo', 'val', crop_size=129,
                                   batch_size=10, is_training=False, tfds_data_dir=data_dir)
  names = []
  for batch in dataset:
    assert batch['image'].shape[1:] == (129, 129, 3)
    assert batch['label'].shape[1:] == (129, 129, 1)
    names += [n.decode() for n in batch['image_name'].numpy()]
    index = int(names[-1].split('_')[1])
    np.testing.assert_array_equal(batch['label'].numpy()[-1, ..., 0],
                                  demo.render('val', index)[1])
  assert sorted(names) == [demo.image_name('val', i) for i in range(80)]
  with pytest.raises(ValueError, match='provides --dataset=demo'):
    pipeline.build_dataset('cityscapes', 'tfds:deeplab_dpc_demo', 'train', crop_size=33,
                           batch_size=1, is_training=True, tfds_data_dir=data_dir)
