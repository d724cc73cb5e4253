"""Image/label preprocessing, faithful to the original `input_preprocess.py`.

Also holds the original `core/preprocess_utils.py` helpers it needs. Random
ops accept an optional stateless seed (shape [2]); with it the result is a
pure function of the inputs, which makes seeded input pipelines reproducible
under parallel `map`. Without it they fall back to TensorFlow's stateful
random ops, like the original.
"""

import tensorflow as tf

from deeplab_dpc import constants

# The original flips with probability 0.5 (`_PROB_OF_FLIP`).
PROB_OF_FLIP = 0.5


def _uniform(seed, minval=0.0, maxval=1.0, dtype=tf.float32):
  if seed is None:
    return tf.random.uniform([], minval=minval, maxval=maxval, dtype=dtype)
  return tf.random.stateless_uniform([], seed=seed, minval=minval, maxval=maxval, dtype=dtype)


def get_random_scale(min_scale_factor, max_scale_factor, step_size, seed=None):
  """Picks a random scale factor, as the original `get_random_scale`.

  Args:
    min_scale_factor: Minimum scale.
    max_scale_factor: Maximum scale.
    step_size: 0 samples uniformly in [min, max); > 0 picks uniformly among
      the discrete values min, min + step, ..., max.
    seed: Optional stateless seed, shape [2].

  Returns:
    A float32 scalar tensor.

  Raises:
    ValueError: If min_scale_factor < 0 or > max_scale_factor.
  """
  if min_scale_factor < 0 or min_scale_factor > max_scale_factor:
    raise ValueError(f'Unexpected min_scale_factor={min_scale_factor} (max_scale_factor='
                     f'{max_scale_factor}).')
  if min_scale_factor == max_scale_factor:
    return tf.constant(min_scale_factor, tf.float32)
  if step_size == 0:
    return _uniform(seed, min_scale_factor, max_scale_factor)
  num_steps = int((max_scale_factor - min_scale_factor) / step_size + 1)
  scale_factors = tf.linspace(float(min_scale_factor), float(max_scale_factor), num_steps)
  index = _uniform(seed, 0, num_steps, tf.int32)
  return tf.cast(scale_factors[index], tf.float32)


def _resize_bilinear(image, size):
  # TF2's tf.image.resize has no align_corners; the original used it.
  return tf.raw_ops.ResizeBilinear(images=image[None], size=size, align_corners=True,
                                   half_pixel_centers=False)[0]


def _resize_nearest(label, size):
  return tf.raw_ops.ResizeNearestNeighbor(images=label[None], size=size, align_corners=True,
                                          half_pixel_centers=False)[0]


def randomly_scale_image_and_label(image, label=None, scale=1.0):
  """Scales image (bilinear) and label (nearest), corners aligned, as the original.

  Args:
    image: float32 [H, W, 3].
    label: Optional [H, W, 1] integer label.
    scale: Scalar scale factor (python number or tensor).

  Returns:
    (image, label) of size floor([H, W] * scale).
  """
  if isinstance(scale, (int, float)) and scale == 1.0:
    return image, label
  shape = tf.shape(image)
  new_size = tf.cast(tf.cast(shape[:2], tf.float32) * scale, tf.int32)
  image = _resize_bilinear(image, new_size)
  if label is not None:
    label = _resize_nearest(label, new_size)
  return image, label


def resize_to_range(image, label=None, min_size=None, max_size=None, factor=None):
  """Resizes image and label keeping the aspect ratio, as the original.

  The smaller side becomes `min_size` unless the larger side would then
  exceed `max_size`, in which case the larger side becomes `max_size`. With
  `factor`, both sides are then made a multiple of `factor` plus one (and
  `max_size` is lowered to such a value first). Image: bilinear, label:
  nearest neighbour, both with aligned corners.

  Args:
    image: float32 [H, W, C].
    label: Optional [H, W, 1] label.
    min_size: Desired size of the smaller side (required).
    max_size: Optional maximum size of the larger side.
    factor: Optional; output sides are multiples of it plus one.

  Returns:
    (resized image, resized label or None).

  Raises:
    ValueError: If `min_size` is None.
  """
  if min_size is None:
    raise ValueError('min_resize_value must be set when resizing (max_resize_value='
                     f'{max_size}); the original requires it too.')
  min_size = tf.cast(min_size, tf.float32)
  if max_size is not None:
    max_size = tf.cast(max_size, tf.float32)
    if factor is not None:
      max_size = (max_size + tf.math.floormod(factor - tf.math.floormod(max_size - 1, factor),
                                              factor) - factor)
  shape = tf.shape(image)
  height = tf.cast(shape[0], tf.float32)
  width = tf.cast(shape[1], tf.float32)
  large_scale = min_size / tf.minimum(height, width)
  new_size = tf.cast(tf.math.ceil(tf.stack([height, width]) * large_scale), tf.int32)
  if max_size is not None:
    small_scale = max_size / tf.maximum(height, width)
    small_size = tf.cast(tf.math.ceil(tf.stack([height, width]) * small_scale), tf.int32)
    new_size = tf.where(tf.cast(tf.reduce_max(new_size), tf.float32) > max_size, small_size,
                        new_size)
  if factor is not None:
    new_size += tf.math.floormod(factor - tf.math.floormod(new_size - 1, factor), factor)
  image = _resize_bilinear(image, new_size)
  if label is not None:
    label = _resize_nearest(label, new_size)
  return image, label


def pad_to_bounding_box(image, offset_height, offset_width, target_height, target_width,
                        pad_value):
  """Pads a [H, W, C] tensor with `pad_value`, as the original helper.

  Like the original, the padding is computed as `pad(image - value) + value`
  so float results match it bit for bit; integer inputs are padded in int32.

  Raises:
    tf.errors.InvalidArgumentError: If the target is smaller than the image.
  """
  image = tf.convert_to_tensor(image)
  original_dtype = image.dtype
  if original_dtype not in (tf.float32, tf.float64):
    image = tf.cast(image, tf.int32)
  pad_value = tf.cast(pad_value, image.dtype)
  shape = tf.shape(image)
  after_height = target_height - offset_height - shape[0]
  after_width = target_width - offset_width - shape[1]
  check = tf.debugging.Assert(
      tf.logical_and(after_height >= 0, after_width >= 0),
      ['pad_to_bounding_box: target', target_height, target_width, 'is smaller than the image',
       shape[0], shape[1]])
  with tf.control_dependencies([check]):
    padded = tf.pad(image - pad_value,
                    [[offset_height, after_height], [offset_width, after_width], [0, 0]])
  return tf.cast(padded + pad_value, original_dtype)


def random_crop(image_list, crop_height, crop_width, seed=None):
  """Crops every tensor of `image_list` at the same random offset.

  Args:
    image_list: [H, W, C] tensors of the same height and width.
    crop_height: Crop height.
    crop_width: Crop width.
    seed: Optional stateless seed, shape [2].

  Returns:
    The list of crops, each [crop_height, crop_width, C].

  Raises:
    ValueError: If `image_list` is empty.
    tf.errors.InvalidArgumentError: If sizes differ or the crop is too big.
  """
  if not image_list:
    raise ValueError('Empty image_list.')
  shape = tf.shape(image_list[0])
  checks = [tf.debugging.Assert(
      tf.logical_and(shape[0] >= crop_height, shape[1] >= crop_width),
      ['Crop size greater than the image size.', shape[0], shape[1]])]
  for other in image_list[1:]:
    other_shape = tf.shape(other)
    checks.append(tf.debugging.Assert(
        tf.reduce_all(tf.equal(other_shape[:2], shape[:2])),
        ['Tensors to crop differ in size:', shape[0], shape[1], other_shape[0],
         other_shape[1]]))
  if seed is not None:
    seeds = tf.random.experimental.stateless_split(seed, 2)
    seed_height, seed_width = seeds[0], seeds[1]
  else:
    seed_height = seed_width = None
  with tf.control_dependencies(checks):
    offset_height = _uniform(seed_height, 0, shape[0] - crop_height + 1, tf.int32)
    offset_width = _uniform(seed_width, 0, shape[1] - crop_width + 1, tf.int32)
  crops = []
  for image in image_list:
    crop = tf.slice(image, [offset_height, offset_width, 0], [crop_height, crop_width, -1])
    crop.set_shape([crop_height, crop_width, image.shape[-1]])
    crops.append(crop)
  return crops


def flip_dim(tensor_list, prob=0.5, dim=1, seed=None):
  """Flips all tensors along `dim` together with probability `prob`.

  Returns:
    The possibly flipped tensors followed by a bool scalar: whether they were.
  """
  is_flipped = _uniform(seed) <= prob
  outputs = [tf.cond(is_flipped, lambda t=t: tf.reverse(t, [dim]), lambda t=t: t)
             for t in tensor_list]
  return outputs + [is_flipped]


def preprocess_image_and_label(image, label, crop_height, crop_width, min_resize_value=None,
                               max_resize_value=None, resize_factor=None, min_scale_factor=1.,
                               max_scale_factor=1., scale_factor_step_size=0,
                               ignore_label=constants.IGNORE_LABEL, is_training=True,
                               mean_pixel=constants.MEAN_PIXEL, seed=None,
                               crop_size_flag='eval_crop_size'):
  """Preprocesses an image and its label, as the original `input_preprocess`.

  Order: cast; optional resize to range; (training) random scale; pad
  bottom/right to at least the crop size with `mean_pixel` (image) and
  `ignore_label` (label); (training) random crop; (training) random
  left-right flip. In evaluation an image larger than the crop is an error
  (the original failed on it too, less clearly).

  Args:
    image: [H, W, 3] image (any real dtype).
    label: [H, W, 1] label, or None (evaluation without ground truth only).
    crop_height: Crop (training) or padded (evaluation) height.
    crop_width: Crop or padded width.
    min_resize_value: Desired size of the smaller side, or None.
    max_resize_value: Maximum size of the larger side, or None.
    resize_factor: Resized sides are multiples of it plus one, or None.
    min_scale_factor: Minimum random scale (training).
    max_scale_factor: Maximum random scale (training).
    scale_factor_step_size: Step between the discrete scales; 0 = continuous.
    ignore_label: Label padding value.
    is_training: Whether to apply the random augmentation.
    mean_pixel: Image padding value (the original's `mean_pixel(model_variant)`).
    seed: Optional stateless seed, shape [2], for reproducible augmentation.
    crop_size_flag: The flag of the crop size, named when an evaluation image
      does not fit it ('eval_crop_size', 'vis_crop_size').

  Returns:
    (original_image, processed_image, label): `original_image` is the input
    (resized when resizing), `processed_image` float32 [crop_height,
    crop_width, 3], `label` int32 [crop_height, crop_width, 1] or None.

  Raises:
    ValueError: If training without a label.
  """
  if is_training and label is None:
    raise ValueError('During training, label must be provided.')
  original_image = image
  processed_image = tf.cast(image, tf.float32)
  if label is not None:
    label = tf.cast(label, tf.int32)
  if seed is not None:
    seeds = tf.random.experimental.stateless_split(seed, 3)
    scale_seed, crop_seed, flip_seed = seeds[0], seeds[1], seeds[2]
  else:
    scale_seed = crop_seed = flip_seed = None

  if min_resize_value or max_resize_value:
    processed_image, label = resize_to_range(processed_image, label, min_resize_value,
                                             max_resize_value, resize_factor)
    original_image = tf.identity(processed_image)

  if is_training:
    scale = get_random_scale(min_scale_factor, max_scale_factor, scale_factor_step_size,
                             scale_seed)
    processed_image, label = randomly_scale_image_and_label(processed_image, label, scale)
    processed_image.set_shape([None, None, 3])

  shape = tf.shape(processed_image)
  height, width = shape[0], shape[1]
  if not is_training:
    fits = tf.debugging.Assert(
        tf.logical_and(height <= crop_height, width <= crop_width),
        [tf.strings.join([
            'Evaluation image of size ', tf.strings.as_string(height), 'x',
            tf.strings.as_string(width),
            f' is larger than the {crop_size_flag.replace("_crop_size", "")} crop size ',
            tf.strings.as_string(crop_height), 'x', tf.strings.as_string(crop_width),
            f'; raise --{crop_size_flag} or set --min_resize_value/--max_resize_value.'])])
    with tf.control_dependencies([fits]):
      height = tf.identity(height)
  target_height = height + tf.maximum(crop_height - height, 0)
  target_width = width + tf.maximum(crop_width - width, 0)
  processed_image = pad_to_bounding_box(processed_image, 0, 0, target_height, target_width,
                                        mean_pixel)
  if label is not None:
    label = pad_to_bounding_box(label, 0, 0, target_height, target_width, ignore_label)

  if is_training:
    processed_image, label = random_crop([processed_image, label], crop_height, crop_width,
                                         crop_seed)
  processed_image.set_shape([crop_height, crop_width, 3])
  if label is not None:
    label.set_shape([crop_height, crop_width, 1])

  if is_training:
    processed_image, label, _ = flip_dim([processed_image, label], PROB_OF_FLIP, dim=1,
                                         seed=flip_seed)
  return original_image, processed_image, label
