"""Small datasets, models and checkpoints for the evaluation and visualisation tests."""

import os

import numpy as np

from deeplab_dpc import checkpoints
from deeplab_dpc import options as options_lib
from deeplab_dpc.data import demo
from deeplab_dpc.data import shard_writer
from deeplab_dpc.testing import recipe_checkpoint


def write_demo_split(output_dir: str, split: str = 'val', count: int = 3,
                     num_shards: int = 1) -> list[str]:
  """Writes the first `count` demo examples of `split` as that split's TFRecords.

  A few images keep the tests fast; the pipeline does not require the full split.
  """
  return shard_writer.write_split(output_dir, split, [(split, i) for i in range(count)],
                                  demo.to_example, num_shards)


def tiny_options(num_classes: int = 6, crop_size=(145, 145), **overrides):
  """A fast model: MobileNet-v2 at a quarter width, ASPP head, no decoder."""
  fields = dict(num_classes=num_classes, model_variant='mobilenet_v2', crop_size=crop_size,
                output_stride=16, depth_multiplier=0.25)
  fields.update(overrides)
  return options_lib.ModelOptions.create(**fields)


def assign_recipe(model, images=None) -> None:
  """Gives `model` deterministic, signal-preserving weights (the golden recipe).

  With `images` (float32 [B, crop_h, crop_w, 3]), the logits biases are then set
  so that every class' mean logit over those images is 0: the predictions then
  vary over the image instead of being one class everywhere, so the metrics
  under test are not those of a constant prediction.
  """
  from deeplab_dpc import model as model_lib  # pylint: disable=g-import-not-at-top
  names = checkpoints.original_names(model)
  for name, variable in names.items():
    variable.assign(recipe_checkpoint.recipe_value(name, variable.shape))
  if images is not None:
    biases = names['logits/semantic/biases']
    biases.assign(np.zeros(biases.shape, np.float32))
    logits = np.asarray(model_lib.predict(model, images)['logits'])
    biases.assign(-logits.mean(axis=(0, 1, 2)).astype(np.float32))


def demo_images(split: str = 'val', count: int = 3, crop_size=(145, 145)) -> np.ndarray:
  """The first demo images of `split`, padded to `crop_size` as the eval pipeline does."""
  images = np.full((count, crop_size[0], crop_size[1], 3), 127.5, np.float32)
  for i in range(count):
    image, _ = demo.render(split, i)
    images[i, :image.shape[0], :image.shape[1]] = image
  return images


def write_tf1_checkpoint(model, prefix: str, global_step: int = 0) -> str:
  """The model's weights as an original-format (name-based, TF1 Saver) checkpoint."""
  tensors = {name: variable.numpy()
             for name, variable in checkpoints.original_names(model).items()}
  tensors['global_step'] = np.array(global_step, np.int64)
  os.makedirs(os.path.dirname(os.path.abspath(prefix)), exist_ok=True)
  return recipe_checkpoint.write_tf1_checkpoint(tensors, prefix)


def write_training_checkpoint(model, log_dir: str, step: int, max_to_keep: int = 5) -> str:
  """A checkpoint as train.py writes it: `LOG/ckpt-<step>` with model and global step."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  checkpoint = tf.train.Checkpoint(model=checkpoints.checkpointable(model),
                                   global_step=tf.Variable(step, dtype=tf.int64))
  return tf.train.CheckpointManager(checkpoint, log_dir, max_to_keep=max_to_keep).save(
      checkpoint_number=step)
