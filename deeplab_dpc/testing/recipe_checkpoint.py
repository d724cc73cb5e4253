"""Writes TF1-style name-keyed checkpoints with the golden data's weight recipe.

The golden outputs in `testdata/golden/` were produced by the original code from
weights that depend only on each variable's name and shape. This module rebuilds
those weights from a manifest (name, shape, dtype per variable) and writes them as
a name-based checkpoint, the format of the original release's checkpoints, so the
import path under test is the one users take.
"""

import json
import math
import zlib

import numpy as np

# Kernel variance gain of the recipe (keeps the signal alive through ~80 layers).
_GAIN = 1.3


def recipe_value(name: str, shape) -> np.ndarray:
  """The recipe's value of one variable (float32), a function of name and shape only.

  Raises:
    ValueError: for a variable kind the recipe does not define.
  """
  shape = tuple(int(d) for d in shape)
  rng = np.random.default_rng(zlib.crc32(name.encode('utf-8')))
  kind = name.rsplit('/', 1)[-1]
  if kind == 'depthwise_weights':
    kh, kw = shape[0], shape[1]
    value = rng.standard_normal(shape) * math.sqrt(_GAIN / (kh * kw))
  elif kind in ('weights', 'pointwise_weights'):
    kh, kw, fan_in = shape[0], shape[1], shape[2]
    value = rng.standard_normal(shape) * math.sqrt(_GAIN / (kh * kw * fan_in))
  elif kind in ('biases', 'beta', 'moving_mean'):
    value = rng.standard_normal(shape) * 0.1
  elif kind in ('gamma', 'moving_variance'):
    value = rng.uniform(0.8, 1.2, shape)
  else:
    raise ValueError(f'the weight recipe has no rule for variable {name!r}')
  return value.astype(np.float32)


def load_manifest(path: str) -> list[dict]:
  """Reads a manifest: a JSON list of {name, shape, dtype}."""
  with open(path, encoding='utf-8') as f:
    return json.load(f)


def recipe_weights(manifest: list[dict]) -> dict[str, np.ndarray]:
  """Every variable of a manifest, by original name."""
  return {v['name']: recipe_value(v['name'], v['shape']) for v in manifest}


def write_tf1_checkpoint(tensors: dict[str, np.ndarray], prefix: str) -> str:
  """Writes a name-based (TF1 `Saver` format) checkpoint at `prefix`.

  Returns:
    The checkpoint prefix, loadable with `tf.train.load_checkpoint`.
  """
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  names = sorted(tensors)
  tf.raw_ops.SaveV2(
      prefix=prefix, tensor_names=names, shape_and_slices=[''] * len(names),
      tensors=[tf.constant(tensors[n]) for n in names])
  return prefix


def main(argv):
  """`python -m deeplab_dpc.testing.recipe_checkpoint MANIFEST PREFIX`."""
  if len(argv) != 3:
    raise ValueError('usage: recipe_checkpoint MANIFEST CHECKPOINT_PREFIX')
  manifest = load_manifest(argv[1])
  print(write_tf1_checkpoint(recipe_weights(manifest), argv[2]))


if __name__ == '__main__':
  from deeplab_dpc import cli  # pylint: disable=g-import-not-at-top
  cli.run(main)
