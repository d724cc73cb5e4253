"""Writing predictions as images, as the original `vis.py`, plus a side-by-side view.

For image number i of the split (in pipeline order), into `<vis_logdir>/`:

* `segmentation_results/%06d_image.png`: the input image (resized if resizing);
* `segmentation_results/%06d_prediction.png`: the coloured prediction at the
  image's original size (the original's output);
* `segmentation_results/%06d_label.png`: the coloured ground truth (if any);
* `segmentation_results/%06d_side_by_side.png`: image | label | prediction;
* with `also_save_raw_predictions`, `raw_segmentation_results/<image name>.png`:
  the raw class ids at the original size; for Cityscapes, label ids in the
  benchmark format (`cityscapes_format`), as the original.

Padding is cropped off first; with `min/max_resize_value` predictions are
resized back to the original size (nearest neighbour, aligned corners), as the
original.
"""

import os
from typing import Callable, Optional

from absl import logging
import numpy as np
import tensorflow as tf

from deeplab_dpc import checkpoints
from deeplab_dpc import fileio
from deeplab_dpc import model as model_lib
from deeplab_dpc.data import colormaps
from deeplab_dpc.data import image_io
from deeplab_dpc.data import preprocess
from deeplab_dpc.evaluation import cityscapes_format
from deeplab_dpc.evaluation import evaluator as evaluator_lib
from deeplab_dpc.evaluation import progress as progress_lib
from deeplab_dpc.evaluation import watch

SEMANTIC_PREDICTION_SAVE_FOLDER = 'segmentation_results'
RAW_SEMANTIC_PREDICTION_SAVE_FOLDER = 'raw_segmentation_results'
IMAGE_FORMAT = '%06d_image.png'
PREDICTION_FORMAT = '%06d_prediction.png'
LABEL_FORMAT = '%06d_label.png'
SIDE_BY_SIDE_FORMAT = '%06d_side_by_side.png'
# White gap between the side-by-side panels, in pixels.
_GAP = 4


def side_by_side(panels, gap: int = _GAP) -> np.ndarray:
  """Concatenates uint8 [H, W, 3] panels of equal height left to right, white between."""
  height = panels[0].shape[0]
  if any(p.shape[0] != height for p in panels):
    raise ValueError(f'Panels differ in height: {[p.shape for p in panels]}')
  spacer = np.full((height, gap, 3), 255, np.uint8)
  parts = []
  for index, panel in enumerate(panels):
    if index:
      parts.append(spacer)
    parts.append(panel)
  return np.concatenate(parts, axis=1)


def _processed_size(height: int, width: int, config) -> tuple[int, int]:
  """Size of an image after the pipeline's resizing (before padding)."""
  if not (config.min_resize_value or config.max_resize_value):
    return height, width
  # The pipeline's own function, so the size is exactly the one it produced.
  resized, _ = preprocess.resize_to_range(tf.zeros([height, width, 1]), None,
                                          config.min_resize_value, config.max_resize_value,
                                          config.resize_factor)
  return int(resized.shape[0]), int(resized.shape[1])


def _resize_nearest(labels: np.ndarray, size: tuple[int, int]) -> np.ndarray:
  resized = tf.raw_ops.ResizeNearestNeighbor(
      images=tf.constant(labels[None, :, :, None].astype(np.int32)), size=list(size),
      align_corners=True, half_pixel_centers=False)
  return resized.numpy()[0, :, :, 0]


def visualize_dataset(predict_fn: Callable, dataset, vis_logdir: str, colormap_name: str,
                      config, *, also_save_raw_predictions: bool = False,
                      raw_label_ids: bool = False,
                      progress: Optional[progress_lib.Progress] = None) -> int:
  """Predicts every image of `dataset` and writes the PNGs listed in the module docstring.

  Args:
    predict_fn: images float32 [B, H, W, 3] -> int predictions [B, H, W].
    dataset: Batches of the evaluation pipeline.
    vis_logdir: Output folder.
    colormap_name: A `colormaps.COLORMAP_NAMES` entry, or a [N, 3] colour
      table (a custom dataset's `descriptor.colormap()`).
    config: The `EvalConfig` the dataset was built with (for the resizing).
    also_save_raw_predictions: Also write raw predictions named after the images.
    raw_label_ids: Write raw predictions as Cityscapes label ids.
    progress: Optional progress reporter.

  Returns:
    Number of images written.
  """
  if isinstance(colormap_name, str):
    colormaps.colormap(colormap_name)  # An unknown name fails before any work.
  save_dir = os.path.join(vis_logdir, SEMANTIC_PREDICTION_SAVE_FOLDER)
  raw_save_dir = os.path.join(vis_logdir, RAW_SEMANTIC_PREDICTION_SAVE_FOLDER)
  fileio.makedirs(save_dir)
  if also_save_raw_predictions:
    fileio.makedirs(raw_save_dir)
  index = 0
  for batch in evaluator_lib.iterate_batches(dataset,
                                             lambda: evaluator_lib.split_files(config)):
    predictions = np.asarray(predict_fn(batch['image']))
    images = batch['image'].numpy()
    labels = batch['label'].numpy()[..., 0] if 'label' in batch else None
    for i in range(predictions.shape[0]):
      height, width = int(batch['height'][i]), int(batch['width'][i])
      valid_h, valid_w = _processed_size(height, width, config)
      prediction = predictions[i, :valid_h, :valid_w]
      image = np.clip(np.rint(images[i, :valid_h, :valid_w]), 0, 255).astype(np.uint8)
      panels = [image]
      image_io.write_png(os.path.join(save_dir, IMAGE_FORMAT % index), image)
      if labels is not None:
        label = colormaps.colorize(labels[i, :valid_h, :valid_w], colormap_name)
        image_io.write_png(os.path.join(save_dir, LABEL_FORMAT % index), label)
        panels.append(label)
      panels.append(colormaps.colorize(prediction, colormap_name))
      image_io.write_png(os.path.join(save_dir, SIDE_BY_SIDE_FORMAT % index), side_by_side(panels))
      if (valid_h, valid_w) != (height, width):
        prediction = _resize_nearest(prediction, (height, width))
      image_io.write_png(os.path.join(save_dir, PREDICTION_FORMAT % index),
                 colormaps.colorize(prediction, colormap_name))
      if also_save_raw_predictions:
        name = os.path.basename(batch['image_name'][i].numpy().decode())
        raw = (cityscapes_format.to_label_ids(prediction) if raw_label_ids
               else prediction.astype(np.uint8))
        image_io.write_png(os.path.join(raw_save_dir, cityscapes_format.result_file_name(name)), raw)
      index += 1
    if progress is not None:
      progress.update(predictions.shape[0])
  if progress is not None:
    progress.finish()
  return index


class Visualizer:
  """Builds the model once at the vis crop size and visualises checkpoints with it.

  Args:
    model_options: `ModelOptions` with `crop_size` = the vis crop size.
    config: `evaluator.EvalConfig` (its `split` is the vis split).
    vis_logdir: Output folder.
    colormap_type: Colormap name; '' = the dataset's own (a custom dataset's
      colours from its `dataset_info.json`).
    also_save_raw_predictions: Also write raw predictions (label ids for Cityscapes).
    show_progress: Report progress while writing.
    model: An already built model for `model_options` (else one is built).
  """

  def __init__(self, model_options, config, vis_logdir: str, colormap_type: str = '',
               also_save_raw_predictions: bool = False, show_progress: bool = True,
               model=None):
    if not vis_logdir:
      raise ValueError('--vis_logdir is required')
    config.check_num_classes(model_options.num_classes)
    if colormap_type:
      self.colormap_type = colormap_type
    else:
      descriptor = config.descriptor
      self.colormap_type = (descriptor.colormap() if descriptor.colors is not None
                            else descriptor.colormap_name)
    if colormap_type and colormap_type not in colormaps.COLORMAP_NAMES:
      raise ValueError(f'--colormap_type={colormap_type!r} is not one of '
                       f'{", ".join(colormaps.COLORMAP_NAMES)}')
    self.options = model_options
    self.config = config
    self.vis_logdir = vis_logdir
    self.also_save_raw_predictions = also_save_raw_predictions
    self.show_progress = show_progress
    self.model = model if model is not None else model_lib.build_model(model_options)
    self.predict_fn = evaluator_lib.prediction_function(self.model, config.eval_scales,
                                                        config.add_flipped_images)

  def visualize(self, checkpoint: Optional[str] = None) -> dict:
    """Writes the PNGs of the model's current weights; returns {'checkpoint', 'num_images'}."""
    what = f'vis {os.path.basename(checkpoint)}' if checkpoint else 'vis'
    progress = progress_lib.Progress(evaluator_lib.count_examples(self.config), what,
                                     enabled=self.show_progress)
    dataset = evaluator_lib.build_dataset(self.config, self.options.crop_size,
                                          crop_size_flag='vis_crop_size')
    count = visualize_dataset(
        self.predict_fn, dataset, self.vis_logdir, self.colormap_type, self.config,
        also_save_raw_predictions=self.also_save_raw_predictions,
        raw_label_ids=self.config.dataset == 'cityscapes', progress=progress)
    logging.info('Wrote %d visualisations to %s', count, self.vis_logdir)
    return {'checkpoint': checkpoint, 'num_images': count}

  def visualize_checkpoint(self, checkpoint_path: str, flag: str = 'checkpoint_path') -> dict:
    """Loads a checkpoint (ours or an original TF1 one) strictly and visualises it."""
    path = watch.resolve_checkpoint(checkpoint_path, flag)
    checkpoints.load_checkpoint(self.model, path, mode=checkpoints.STRICT, flag=flag)
    logging.info('Visualizing with %s', path)
    return self.visualize(path)


def run_visualization_loop(visualizer: Visualizer, checkpoint_dir: str,
                           eval_interval_secs: float = 300, max_number_of_iterations: int = 0,
                           checkpoint_timeout_secs: float = 0,
                           poll_secs: float = 1.0) -> list[dict]:
  """Visualises the latest checkpoint of `checkpoint_dir`, then each new one
  (overwriting the files), as the original; waiting as `watch.run_on_checkpoints`."""
  return watch.run_on_checkpoints(
      visualizer.visualize_checkpoint, checkpoint_dir, interval_secs=eval_interval_secs,
      max_count=max_number_of_iterations, timeout_secs=checkpoint_timeout_secs,
      poll_secs=poll_secs)
