"""The model reproduces the original release's outputs (Xception-65 + DPC + decoder).

Weights come from our own recipe checkpoint, through the TF1 import users take.
"""

import numpy as np
import pytest

from deeplab_dpc import checkpoints
from deeplab_dpc import model as model_lib
from deeplab_dpc.testing import golden

CASE = 'xception65_dpc_os16'


@pytest.fixture(scope='module')
def loaded(tmp_path_factory):
  model = model_lib.build_model(golden.model_options(CASE))
  checkpoint = golden.write_checkpoint(CASE, str(tmp_path_factory.mktemp('ckpt')))
  checkpoints.load_tf1_checkpoint(model, checkpoint)  # Strict: every name matches.
  return model, golden.outputs(CASE)


def test_variable_names_are_the_original_names():
  model = model_lib.build_model(golden.model_options(CASE))
  assert sorted(checkpoints.original_names(model)) == sorted(golden.manifest_names(CASE))


def test_every_stage_matches(loaded):
  model, ref = loaded
  ours = model.extract(ref['input_images'].astype(np.float32))
  for name in ('backbone_features', 'decoder_low_level_features', 'dpc_branch0',
               'dpc_branch1', 'dpc_branch2', 'dpc_branch3', 'dpc_branch4', 'head_output',
               'decoder_output'):
    # A correct float32 model lands near 1e-5; wrong padding or epsilon near 1.
    assert golden.check_features(name, ours[name], ref[name]) < 1e-4
  assert golden.check_logits('logits', ours['logits'], ref['logits']) < 1e-4
  np.testing.assert_array_equal(ref['merged_logits'], ref['logits'])


def test_predictions_match(loaded):
  model, ref = loaded
  out = model_lib.predict(model, ref['input_images'].astype(np.float32))
  golden.check_logits('logits_upsampled', out['logits'], ref['logits_upsampled'])
  golden.check_predictions(out['semantic_predictions'], ref['predictions'],
                           ref['logits_upsampled'])
  probabilities = np.asarray(out['semantic_probabilities'])
  np.testing.assert_allclose(probabilities.sum(-1), 1.0, atol=1e-5)
