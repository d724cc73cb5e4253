"""The demo's pretrained backbone: the shipped one loads, a rebuild works, bad ones are named."""

import json
import os

import keras
import pytest
import tensorflow as tf

from deeplab_dpc import checkpoints
from deeplab_dpc import demo_backbone
from deeplab_dpc import demo_pipeline
from deeplab_dpc import model as model_lib
from deeplab_dpc import options as options_lib


def test_the_shipped_backbone_loads_and_says_how_it_was_made():
  path = demo_backbone.check_backbone_checkpoint(demo_backbone.PRETRAINED_CHECKPOINT,
                                                 'backbone_checkpoint')
  with open(os.path.join(os.path.dirname(path), demo_backbone.PROVENANCE_FILE)) as f:
    provenance = json.load(f)
  assert provenance['model']['model_variant'] == 'mobilenet_v2'
  assert provenance['model']['depth_multiplier'] == 0.5
  assert provenance['recipe']['training_number_of_steps'] == provenance['global_step']
  # It is a trained backbone, far from always answering "background" (0.14).
  assert provenance['pretrain_val_miou'] > 0.25
  # Backbone variables only: nothing of a head, a decoder or logits.
  names = [name for name, _ in tf.train.list_variables(path) if name.startswith('model/')]
  assert names and all(n.startswith('model/MobilenetV2') for n in names), names[:5]


def test_a_missing_or_foreign_checkpoint_names_the_flag_and_file(tmp_path):
  missing = str(tmp_path / 'nothing.ckpt')
  with pytest.raises(FileNotFoundError, match=r'--backbone_checkpoint=.*nothing\.ckpt'):
    demo_backbone.check_backbone_checkpoint(missing, 'backbone_checkpoint')
  with pytest.raises(ValueError, match='--backbone_checkpoint'):
    demo_backbone.check_backbone_checkpoint('', 'backbone_checkpoint')
  # A full-width MobileNet-v2 backbone: every shape differs from the x0.5 one.
  keras.backend.clear_session()
  wide = model_lib.build_model(options_lib.ModelOptions.create(
      num_classes=6, model_variant='mobilenet_v2', depth_multiplier=1.0, crop_size=[33, 33]))
  prefix = demo_pipeline.write_backbone_checkpoint(wide, str(tmp_path / 'wide.ckpt'))
  with pytest.raises(ValueError, match=r'--backbone_checkpoint=.*wide\.ckpt is not a '
                                       r'mobilenet_v2 x0\.5 demo backbone'):
    demo_backbone.check_backbone_checkpoint(prefix, 'backbone_checkpoint')


def test_pretraining_writes_a_loadable_backbone_and_its_record(tmp_path):
  config = demo_backbone.PretrainConfig(training_number_of_steps=3, crop_size=33, batch_size=2,
                                        num_examples=8)
  record = demo_backbone.pretrain(str(tmp_path / 'out'), str(tmp_path / 'work'), config,
                                  log_steps=1)
  prefix = str(tmp_path / 'out' / demo_backbone.CHECKPOINT_NAME)
  assert record['global_step'] == 3 and record['data']['examples'] == 8
  assert 0.0 <= record['pretrain_val_miou'] <= 1.0
  with open(tmp_path / 'out' / demo_backbone.PROVENANCE_FILE) as f:
    assert json.load(f)['recipe'] == record['recipe']
  # The pretraining split holds the first 8 scenes, none of them a train or val scene.
  from deeplab_dpc.data import pipeline
  files = pipeline.list_files(str(tmp_path / 'work' / 'data'), 'pretrain', 'demo')
  records = sum(1 for _ in tf.data.TFRecordDataset(files))
  assert records == 8
  keras.backend.clear_session()
  model = model_lib.build_model(demo_backbone.model_options(65))
  loaded = checkpoints.load_checkpoint(model, prefix, mode=checkpoints.BACKBONE)
  assert loaded['loaded'] > 100
