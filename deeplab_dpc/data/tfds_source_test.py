"""Tests of tfds sources: a tiny stand-in with the tfds Cityscapes features."""

from etils import epath
import numpy as np
import pytest
import tensorflow_datasets as tfds

from deeplab_dpc.data import cityscapes
from deeplab_dpc.data import pipeline
from deeplab_dpc.data import tfds_source

_SIZE = (8, 16)


def _label_ids(index):
  return ((np.arange(_SIZE[0] * _SIZE[1]) + index) % 34).reshape(_SIZE + (1,)).astype(np.uint8)


class FakeCityscapesSeg(tfds.core.GeneratorBasedBuilder):
  """Same features as tfds `cityscapes/semantic_segmentation`, 2 tiny examples per split."""

  VERSION = tfds.core.Version('1.0.0')
  code_path = epath.Path(__file__)

  def _info(self):
    return tfds.core.DatasetInfo(builder=self, features=tfds.features.FeaturesDict({
        'image_id': tfds.features.Text(),
        'image_left': tfds.features.Image(shape=_SIZE + (3,), encoding_format='png'),
        'segmentation_label': tfds.features.Image(shape=_SIZE + (1,), encoding_format='png',
                                                  use_colormap=True),
    }))

  def _split_generators(self, dl_manager):
    return {'train': self._generate_examples(0), 'validation': self._generate_examples(10)}

  def _generate_examples(self, offset):
    for index in range(offset, offset + 2):
      yield str(index), {'image_id': f'city_{index:06d}',
                         'image_left': np.full(_SIZE + (3,), index, np.uint8),
                         'segmentation_label': _label_ids(index)}


def test_cityscapes_label_ids_become_train_ids(tmp_path):
  data_dir = str(tmp_path)
  tfds.builder('fake_cityscapes_seg', data_dir=data_dir).download_and_prepare()
  tfds_source.register_tfds_adapter('fake_cityscapes_seg', tfds_source.CITYSCAPES_ADAPTER)
  dataset = pipeline.build_dataset('cityscapes', 'tfds:fake_cityscapes_seg', 'val',
                                   crop_size=(9, 17), batch_size=2, is_training=False,
                                   tfds_data_dir=data_dir)
  batch = next(iter(dataset))
  table = cityscapes.label_id_to_train_id()
  for name, label in zip(batch['image_name'].numpy(), batch['label'].numpy()):
    index = int(name.decode().split('_')[1])
    np.testing.assert_array_equal(label[:8, :16], table[_label_ids(index)])
    assert (label[8:] == 255).all()
  assert batch['height'].numpy().tolist() == [8, 8]


def test_adapters():
  assert tfds_source.get_adapter('cityscapes/semantic_segmentation:1.0.0').dataset == 'cityscapes'
  assert tfds_source.get_adapter('deeplab_dpc_demo').dataset == 'demo'
  with pytest.raises(ValueError, match='voc/2012 has no segmentation masks'):
    tfds_source.get_adapter('voc/2012')
  with pytest.raises(ValueError, match="Split 'train_coarse' has no tfds equivalent"):
    tfds_source.load('cityscapes/semantic_segmentation', 'train_coarse', 'cityscapes')
