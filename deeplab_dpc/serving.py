"""SavedModel export with the signature serving systems call.

`serving_default(image)`: uint8 [batch, height, width, 3]. Returns

* `semantic_predictions`: int32 [batch, height, width];
* `semantic_probabilities`: float32 [batch, height, width, classes];
* `logits`: float32 [batch, height, width, classes] (see `model.predict`),

always at the input's height and width. Two modes, as the original
`export_model.py`:

* Without resizing (the default), height and width must be at most the crop
  size: smaller images are padded (bottom/right) with the mean pixel to the crop
  size and the outputs are cropped back; larger ones are an error.
* With `min_resize_value` (and optionally `max_resize_value`, `resize_factor`),
  images of any size are first resized keeping the aspect ratio
  (`preprocess.resize_to_range`, bilinear, aligned corners), padded, predicted,
  cropped to the resized size and resized back to the input size: predictions
  with nearest neighbour (as the original), probabilities and logits bilinearly
  (both with aligned corners). So `semantic_predictions` is the original's
  output, and the argmax of the resized-back probabilities may differ from it
  on a few boundary pixels.

A batch holds images of one size (a tensor does); each is resized alike.

The weights are frozen into the graph as constants, as the original's
`export_model.py` froze its inference graph: the depthwise convs' folded batch
norm is computed once at load, and oneDNN keeps the reordered constant filters
between calls instead of re-deriving them every call (measured: see
`benchmarks/model_latency.py`). A SavedModel is for serving; training resumes
from checkpoints.
"""

import json
import os
import re

import tensorflow as tf
from tensorflow.python.framework import convert_to_constants  # pylint: disable=g-direct-tensorflow-import

from deeplab_dpc import constants
from deeplab_dpc import fileio
from deeplab_dpc import model as model_lib
from deeplab_dpc.data import preprocess

OPTIONS_ASSET = 'deeplab_options.json'

# What `export_saved_model` writes: a folder holding these and nothing else is
# a previous export, which a new export may replace.
_EXPORT_TOP_LEVEL = {'saved_model.pb', 'fingerprint.pb', 'variables', 'assets'}
_EXPORT_VARIABLES = re.compile(r'^variables\.(index|data-\d{5}-of-\d{5})$')


def _checked_rank4(images):
  # The signature leaves the rank open because a loaded signature does not
  # enforce a declared rank; this check's error names `image` and its shape.
  return tf.ensure_shape(images, [None, None, None, 3])


def _pad_to_crop(images, crop_size, too_large_hint='export with a larger --crop_size',
                 what='image'):
  """Pads images to the crop size with the mean pixel; checks they fit.

  Args:
    images: uint8 or float32 [batch, height, width, 3].
    crop_size: (crop_height, crop_width).
    too_large_hint: What the error tells the user to change.
    what: How the error names the images ('image', 'resized image').

  Returns:
    (float32 [batch, crop_height, crop_width, 3], height, width).
  """
  crop_h, crop_w = crop_size
  shape = tf.shape(images)
  height, width = shape[1], shape[2]
  with tf.control_dependencies([
      tf.debugging.assert_less_equal(
          height, crop_h, message=f'{what} height exceeds the crop height {crop_h} '
          f'({too_large_hint})'),
      tf.debugging.assert_less_equal(
          width, crop_w, message=f'{what} width exceeds the crop width {crop_w} '
          f'({too_large_hint})'),
  ]):
    # Padding `x - mean` with zeros then adding the mean, as the original
    # pad_to_bounding_box, so the padded value is exactly 127.5.
    x = tf.cast(images, tf.float32) - constants.MEAN_PIXEL
  x = tf.pad(x, [[0, 0], [0, crop_h - height], [0, crop_w - width], [0, 0]])
  x = x + constants.MEAN_PIXEL
  return tf.ensure_shape(x, [None, crop_h, crop_w, 3]), height, width


def check_resize_values(min_resize_value=None, max_resize_value=None, resize_factor=None):
  """Validates the resize options; ValueError naming the flag.

  Returns:
    Whether images are resized (min_resize_value or max_resize_value set).
  """
  for name, value in (('min_resize_value', min_resize_value),
                      ('max_resize_value', max_resize_value),
                      ('resize_factor', resize_factor)):
    if value is not None and int(value) < 1:
      raise ValueError(f'--{name} must be a positive integer, got {value}')
  if not (min_resize_value or max_resize_value):
    return False  # As the original, resize_factor alone changes nothing.
  if not min_resize_value:
    # resize_to_range needs the smaller side's target; the original fails too.
    raise ValueError(f'--max_resize_value={max_resize_value} needs --min_resize_value '
                     '(the smaller side\'s target size)')
  return True


def resize_images_to_range(images, min_resize_value, max_resize_value=None,
                           resize_factor=None):
  """Resizes a batch of same-size images with `preprocess.resize_to_range`.

  Args:
    images: uint8 or float [batch, height, width, 3].
    min_resize_value: Smaller side's target.
    max_resize_value: Larger side's maximum, or None.
    resize_factor: Resized sides are multiples of it plus one, or None.

  Returns:
    float32 [batch, new_height, new_width, 3].
  """
  def resize_one(image):
    resized, _ = preprocess.resize_to_range(tf.cast(image, tf.float32), None,
                                            min_resize_value, max_resize_value,
                                            resize_factor)
    return resized

  # Every image of the batch has the same size, so every one gets the same
  # new size and the results stack.
  return tf.map_fn(resize_one, images,
                   fn_output_signature=tf.TensorSpec([None, None, 3], tf.float32))


def resize_outputs_back(outputs: dict, size) -> dict:
  """Resizes prediction outputs to `size` (aligned corners, as the original).

  Predictions use nearest neighbour (the original's `_resize_label`);
  probabilities and logits are resized bilinearly.
  """
  resized = {}
  for key, value in outputs.items():
    if key == 'semantic_predictions':
      resized[key] = tf.raw_ops.ResizeNearestNeighbor(
          images=value[..., None], size=size, align_corners=True,
          half_pixel_centers=False)[..., 0]
    else:
      resized[key] = tf.raw_ops.ResizeBilinear(images=value, size=size, align_corners=True,
                                               half_pixel_centers=False)
  return resized


def serving_function(model: model_lib.DeepLabModel, inference_scales=(1.0,),
                     add_flipped_images=False, *, min_resize_value=None,
                     max_resize_value=None, resize_factor=None):
  """The `serving_default` function of a model (a tf.function over uint8 images).

  Args:
    model: A built `DeepLabModel`.
    inference_scales: Image pyramid.
    add_flipped_images: Add left-right flipped passes.
    min_resize_value: Resize every image so that its smaller side is this
      (keeping the aspect ratio) before padding; None: no resizing, and images
      larger than the crop size are an error.
    max_resize_value: Upper bound of the resized larger side.
    resize_factor: Resized sides are multiples of this plus one.

  Returns:
    A `tf.function` `serve(image)` returning the dict of the module docstring.

  Raises:
    ValueError: Inconsistent resize values.
  """
  crop_size = model.options.crop_size
  scales = tuple(float(s) for s in inference_scales)
  resize = check_resize_values(min_resize_value, max_resize_value, resize_factor)

  if not resize:
    @tf.function(input_signature=[tf.TensorSpec(None, tf.uint8, name='image')])
    def serve(image):
      padded, height, width = _pad_to_crop(_checked_rank4(image), crop_size)
      outputs = model_lib.predict(model, padded, scales, add_flipped_images)
      return {key: value[:, :height, :width] for key, value in outputs.items()}
    return serve

  hint = ('lower --max_resize_value or raise --crop_size; the resized larger side must fit '
          'the crop')

  @tf.function(input_signature=[tf.TensorSpec(None, tf.uint8, name='image')])
  def serve_any_size(image):
    image = _checked_rank4(image)
    original_size = tf.shape(image)[1:3]
    resized = resize_images_to_range(image, min_resize_value, max_resize_value,
                                     resize_factor)
    padded, height, width = _pad_to_crop(resized, crop_size, hint, what='resized image')
    outputs = model_lib.predict(model, padded, scales, add_flipped_images)
    outputs = {key: value[:, :height, :width] for key, value in outputs.items()}
    return resize_outputs_back(outputs, original_size)

  return serve_any_size


def freeze(serve):
  """`serve` with its variables turned into constants, same signature and outputs.

  Args:
    serve: A `tf.function` with an `input_signature` returning a dict of tensors.

  Returns:
    A `tf.function` with the same signature whose graph holds no variables.
  """
  concrete = serve.get_concrete_function()
  frozen = convert_to_constants.convert_variables_to_constants_v2(concrete)
  # The frozen function returns a flat list in `tf.nest` order (sorted keys).
  keys = sorted(concrete.structured_outputs)

  @tf.function(input_signature=serve.input_signature)
  def serve_frozen(*args):
    return dict(zip(keys, frozen(*args)))

  return serve_frozen


def _foreign_files(path: str) -> list[str]:
  """What in the folder `path` is not part of a SavedModel export (relative paths)."""
  foreign = []
  for name in fileio.listdir(path):
    full = os.path.join(path, name)
    if name not in _EXPORT_TOP_LEVEL:
      foreign.append(name)
    elif name in ('variables', 'assets') and not fileio.isdir(full):
      foreign.append(name)
    elif name == 'variables':
      foreign += [f'variables/{n}' for n in fileio.listdir(full)
                  if not _EXPORT_VARIABLES.match(n)
                  or not fileio.isfile(os.path.join(full, n))]
    elif name == 'assets':
      foreign += [f'assets/{n}' for n in fileio.listdir(full) if n != OPTIONS_ASSET]
    elif not fileio.isfile(full):
      foreign.append(name)
  return foreign


def is_saved_model_export(path: str) -> bool:
  """Whether `path` is a folder that `export_saved_model` wrote (and nothing else).

  A SavedModel export holds `saved_model.pb`, `assets/deeplab_options.json`
  and optionally `fingerprint.pb` and `variables/variables.{index,data-*}`.
  """
  return (fileio.isdir(path) and not fileio.islink(path)
          and fileio.isfile(os.path.join(path, 'saved_model.pb'))
          and fileio.isfile(os.path.join(path, 'assets', OPTIONS_ASSET))
          and not _foreign_files(path))


def check_export_path(export_path: str, overwrite: bool = False) -> None:
  """Refuses an export path whose contents an export would destroy.

  Missing paths, empty folders and previous SavedModel exports may be
  replaced; anything else (a file, a folder holding other files) only with
  `overwrite`.

  Args:
    export_path: The `--export_path` value.
    overwrite: The `--overwrite` flag: replace whatever is at the path.

  Raises:
    ValueError: Naming `--export_path`, what is in the way and `--overwrite`.
  """
  path = fileio.abspath(export_path)
  parent = os.path.dirname(path)
  # The nearest existing ancestor must be a folder, or makedirs fails later.
  ancestor = parent
  while not fileio.exists(ancestor):
    ancestor = os.path.dirname(ancestor)
  if not fileio.isdir(ancestor):
    raise ValueError(f'--export_path={export_path}: {ancestor} is a file, not a folder')
  if overwrite or not fileio.lexists(path):
    return
  if fileio.islink(path) or not fileio.isdir(path):
    raise ValueError(f'--export_path={export_path} is a file, not a SavedModel folder; '
                     'choose another path or pass --overwrite to replace it')
  if not fileio.listdir(path) or is_saved_model_export(path):
    return
  foreign = _foreign_files(path)
  shown = ', '.join(foreign[:3]) + (f' and {len(foreign) - 3} more' if len(foreign) > 3 else '')
  if not foreign:
    shown = 'no saved_model.pb or assets/' + OPTIONS_ASSET
  raise ValueError(f'--export_path={export_path} holds files that are not part of a '
                   f'SavedModel export ({shown}); choose another folder or pass '
                   '--overwrite to replace it')


def _umask() -> int:
  mask = os.umask(0o022)
  os.umask(mask)
  return mask


def dataset_settings(descriptor) -> dict:
  """What an export records of its dataset: name, class names, ignore label, colours.

  The colours are the dataset's own (a custom dataset's) or those of its colormap
  (a built-in dataset's), one [r, g, b] per class: segment.py draws with them.
  """
  colors = descriptor.colormap()[:descriptor.num_classes]
  return {'name': descriptor.name, 'class_names': list(descriptor.class_names),
          'ignore_label': int(descriptor.ignore_label),
          'colormap': [[int(v) for v in c] for c in colors]}


def export_saved_model(model: model_lib.DeepLabModel, export_path: str,
                       inference_scales=(1.0,), add_flipped_images=False, *,
                       min_resize_value=None, max_resize_value=None,
                       resize_factor=None, overwrite: bool = False, dataset=None) -> str:
  """Writes a SavedModel with `serving_default` (frozen weights), atomically.

  The model options and the export settings go along as
  `assets/deeplab_options.json` (with `dataset`: its class names, ignore label
  and colours, so that segment.py draws the classes in the dataset's colours). The
  export is written into a hidden sibling folder and renamed into place, so a
  failure (disk full, a kill) leaves any previous export untouched. Only a
  previous SavedModel export (or an empty folder) is replaced, unless
  `overwrite`. The folder's mode follows the umask.

  Args:
    model: A built `DeepLabModel` holding the weights to serve.
    export_path: Directory to create.
    inference_scales: Image pyramid of the exported graph.
    add_flipped_images: Add flipped passes.
    min_resize_value: See `serving_function`; None keeps the crop-size limit.
    max_resize_value: See `serving_function`.
    resize_factor: See `serving_function`.
    overwrite: Replace whatever is at `export_path` (a file, another folder).
    dataset: Optional `DatasetDescriptor` of the data the model was trained on.

  Returns:
    export_path.

  Raises:
    ValueError: Inconsistent resize values, or `export_path` holds something
      other than a SavedModel export (and not `overwrite`).
    OSError: ENOSPC naming the file when the disk is full.
  """
  check_export_path(export_path, overwrite)
  serve = freeze(serving_function(model, inference_scales, add_flipped_images,
                                  min_resize_value=min_resize_value,
                                  max_resize_value=max_resize_value,
                                  resize_factor=resize_factor))
  export_path = fileio.abspath(export_path)
  parent = os.path.dirname(export_path)
  fileio.makedirs(parent)
  tmp = fileio.make_temp_dir(parent, '.tmp-export-')
  try:
    if fileio.is_local(tmp):
      # mkdtemp creates the folder 0700; an export is meant to be shared like
      # any other folder the user creates.
      os.chmod(tmp, 0o777 & ~_umask())
    try:
      module = tf.Module()
      module.serve = serve
      tf.saved_model.save(module, tmp, signatures={'serving_default': serve})
      fileio.makedirs(os.path.join(tmp, 'assets'))
      settings = {'model_options': model.options.to_dict(),
                  'inference_scales': list(inference_scales),
                  'add_flipped_images': bool(add_flipped_images),
                  'min_resize_value': min_resize_value,
                  'max_resize_value': max_resize_value,
                  'resize_factor': resize_factor}
      if dataset is not None:
        settings['dataset'] = dataset_settings(dataset)
      fileio.atomic_write(os.path.join(tmp, 'assets', OPTIONS_ASSET),
                          json.dumps(settings, indent=1))
    except (OSError, tf.errors.OpError) as e:
      disk_full = fileio.as_disk_full(e, export_path)
      if disk_full is None:
        raise
      raise disk_full from None
    # Checked again just before replacing: the folder may have changed during
    # the export.
    check_export_path(export_path, overwrite)
    fileio.replace_directory(tmp, export_path)
  finally:
    if fileio.exists(tmp):
      fileio.rmtree(tmp)
  return export_path
