"""Our multiply-add and parameter counts equal the original graph's (golden stats.json)."""

import json
import os

import pytest

from deeplab_dpc import layers
from deeplab_dpc import model as model_lib
from deeplab_dpc import model_stats
from deeplab_dpc.testing import golden


@pytest.mark.parametrize('case', golden.CASES)
def test_counts_match_the_original(case, monkeypatch):
  # The original graph also runs the atrous taps that read only padding, which our
  # convs drop (same values, layers_test.py): count with them, as the original.
  monkeypatch.setattr(layers.ConvBN, '_taps_inside',
                      lambda self, kernel, x, padding: (kernel, self.rate))
  with open(os.path.join(golden.case_dir(case), 'stats.json'), encoding='utf-8') as f:
    stats = json.load(f)
  model = model_lib.build_model(golden.model_options(case))
  madds = model_stats.multiply_adds(model)
  assert madds['total'] == stats['analytic_macs']
  assert madds['Conv2D'] == stats['analytic_macs_by_op']['Conv2D']
  assert madds['DepthwiseConv2dNative'] == stats['analytic_macs_by_op']['DepthwiseConv2dNative']
  assert model_stats.trainable_parameters(model) == stats['trainable_params']
  assert len(model.weights) == stats['num_variables']
