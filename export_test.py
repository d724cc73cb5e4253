"""export.py: the SavedModel contract, golden parity through it, any-size images,
the TFLite flags, and user mistakes."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from deeplab_dpc import cell
from deeplab_dpc import checkpoints
from deeplab_dpc import model as model_lib
from deeplab_dpc import options as options_lib
from deeplab_dpc import serving
from deeplab_dpc import tflite
from deeplab_dpc.data import colormaps
from deeplab_dpc.data import demo
from deeplab_dpc.data import preprocess
from deeplab_dpc.data import shard_writer
from deeplab_dpc.testing import cli_runner
from deeplab_dpc.testing import golden

ROOT = os.path.dirname(os.path.abspath(__file__))
CASE = 'xception65_dpc_os16'
GOLDEN_FLAGS = ['--model_variant=xception_65', '--output_stride=16', '--crop_size=129,161',
                '--num_classes=19', '--decoder_output_stride=4',
                f'--dense_prediction_cell_json={cell.RELEASED_CELL_PATH}']


def _export(*flags):
  return subprocess.run([sys.executable, os.path.join(ROOT, 'export.py'), *flags],
                        capture_output=True, text=True, cwd=ROOT, check=False,
                        env={**os.environ, 'TF_CPP_MIN_LOG_LEVEL': '2'})


@pytest.fixture(scope='module')
def golden_checkpoint(tmp_path_factory):
  return golden.write_checkpoint(CASE, str(tmp_path_factory.mktemp('ckpt')))


@pytest.fixture(scope='module')
def golden_export(golden_checkpoint, tmp_path_factory):
  path = str(tmp_path_factory.mktemp('export') / 'saved_model')
  result = _export(f'--checkpoint_path={golden_checkpoint}', f'--export_path={path}',
                   *GOLDEN_FLAGS)
  assert result.returncode == 0, result.stderr[-3000:]
  return tf.saved_model.load(path).signatures['serving_default'], path


def test_signature_and_golden_parity(golden_export):
  serve, path = golden_export
  ref = golden.outputs(CASE)
  out = serve(image=tf.constant(ref['input_images']))
  assert out['semantic_predictions'].dtype == tf.int32
  assert out['semantic_predictions'].shape == (1, 129, 161)
  assert out['logits'].dtype == tf.float32 and out['logits'].shape == (1, 129, 161, 19)
  assert out['semantic_probabilities'].shape == (1, 129, 161, 19)
  golden.check_logits('logits_upsampled', out['logits'].numpy(), ref['logits_upsampled'])
  golden.check_predictions(out['semantic_predictions'].numpy(), ref['predictions'],
                           ref['logits_upsampled'])
  assert os.path.isfile(os.path.join(path, 'assets', 'deeplab_options.json'))


def test_saved_model_weights_are_frozen_constants(golden_export):
  serve, _ = golden_export
  graph_def = serve.graph.as_graph_def()
  ops = {node.op for node in graph_def.node}
  ops |= {node.op for function in graph_def.library.function for node in function.node_def}
  assert 'Conv2D' in ops or '_FusedConv2D' in ops
  assert not ops & {'VarHandleOp', 'ReadVariableOp', 'VariableV2'}


def test_smaller_images_are_padded_with_the_mean_and_cropped_back(golden_export,
                                                                  golden_checkpoint):
  serve, _ = golden_export
  image = golden.outputs(CASE)['input_images'][:, :100, :120]
  out = serve(image=tf.constant(image))
  assert out['semantic_predictions'].shape == (1, 100, 120)
  # The original pads bottom/right with the mean pixel 127.5 (not a uint8 value).
  padded = np.full((1, 129, 161, 3), 127.5, np.float32)
  padded[:, :100, :120] = image
  model = model_lib.build_model(golden.model_options(CASE))
  checkpoints.load_tf1_checkpoint(model, golden_checkpoint)
  expected = model_lib.predict(model, padded)
  np.testing.assert_allclose(out['logits'].numpy(),
                             np.asarray(expected['logits'])[:, :100, :120], atol=1e-4)


def test_image_larger_than_crop_is_an_error(golden_export):
  serve, _ = golden_export
  with pytest.raises(tf.errors.InvalidArgumentError, match='exceeds the crop height 129'):
    serve(image=tf.zeros([1, 130, 161, 3], tf.uint8))
  with pytest.raises(tf.errors.InvalidArgumentError, match='exceeds the crop width 161'):
    serve(image=tf.zeros([1, 129, 170, 3], tf.uint8))


def test_wrong_dtype_or_rank_is_an_error(golden_export):
  serve, _ = golden_export
  with pytest.raises((TypeError, ValueError, tf.errors.InvalidArgumentError), match='uint8'):
    serve(image=tf.zeros([1, 129, 161, 3], tf.float32))
  with pytest.raises((TypeError, ValueError, tf.errors.InvalidArgumentError),
                     match=r'tensor image \[129,161,3\] is not compatible with '
                     r'expected shape \[\?,\?,\?,3\]'):
    serve(image=tf.zeros([129, 161, 3], tf.uint8))


def test_multi_scale_export_equals_in_process_prediction(tmp_path):
  options = options_lib.ModelOptions.create(
      num_classes=3, model_variant='xception_41', crop_size=(33, 49), output_stride=16,
      atrous_rates=(6,))
  model = model_lib.build_model(options)
  prefix = checkpoints.save_checkpoint(model, str(tmp_path / 'ckpt' / 'ours'))
  path = str(tmp_path / 'saved_model')
  result = _export(f'--checkpoint_path={prefix}', f'--export_path={path}',
                   '--model_variant=xception_41', '--output_stride=16', '--crop_size=33',
                   '--crop_size=49', '--num_classes=3', '--atrous_rates=6',
                   '--inference_scales=0.75,1.0,1.25', '--add_flipped_images')
  assert result.returncode == 0, result.stderr[-3000:]
  images = np.random.default_rng(1).integers(0, 256, (2, 33, 49, 3)).astype(np.uint8)
  out = tf.saved_model.load(path).signatures['serving_default'](image=tf.constant(images))
  expected = model_lib.predict(model, images.astype(np.float32), (0.75, 1.0, 1.25), True)
  np.testing.assert_allclose(out['semantic_probabilities'].numpy(),
                             np.asarray(expected['semantic_probabilities']), atol=1e-5)
  np.testing.assert_array_equal(out['semantic_predictions'].numpy(),
                                np.asarray(expected['semantic_predictions']))


_MISTAKES = [
    ([], '--checkpoint_path is required'),
    (['--quantization=dynamic_range'], '--quantization=dynamic_range applies to the TFLite'),
    (['--tflite_path=/tmp/x.tflite', '--quantization=full_integer'],
     '--quantization=full_integer needs --dataset_dir'),
    (['--max_resize_value=100'], '--max_resize_value=100 needs --min_resize_value'),
    (['--checkpoint_path=/nonexistent/model.ckpt'], '--checkpoint_path: no checkpoint at'),
    (['--output_stride=12'], '--output_stride must be 8, 16 or 32'),
    (['--crop_size=129,x'], '--crop_size must be integers'),
    (['--num_classes=0'], '--num_classes must be an integer >= 1'),
    (['--dataset=pascal_voc_seg'],
     '--num_classes=19 but --dataset=pascal_voc_seg has 21 classes: leave out --num_classes'),
    (['--dense_prediction_cell_json=/nonexistent.json'], 'dense_prediction_cell_json: no such'),
]


@pytest.fixture(scope='module')
def mistake_runs(golden_checkpoint, tmp_path_factory):
  """export.py on each of `_MISTAKES`, one forked run each (`cli_runner`)."""
  out = tmp_path_factory.mktemp('mistakes')
  argvs = []
  for index, (flags, _) in enumerate(_MISTAKES):
    base = {f.split('=')[0]: f for f in [f'--checkpoint_path={golden_checkpoint}',
                                          f'--export_path={out}/{index}', *GOLDEN_FLAGS]}
    if not flags:
      base.pop('--checkpoint_path')
    for flag in flags:
      base[flag.split('=')[0]] = flag
    argvs.append(list(base.values()))
  return cli_runner.run_many('deeplab_dpc.tools.export', argvs, cwd=ROOT,
                             env={**os.environ, 'TF_CPP_MIN_LOG_LEVEL': '2'})


@pytest.mark.parametrize('index', range(len(_MISTAKES)),
                         ids=[message for _, message in _MISTAKES])
def test_user_mistakes_exit_2_with_one_line(index, mistake_runs):
  message, result = _MISTAKES[index][1], mistake_runs[index]
  assert result.returncode == 2, result.stderr[-2000:]
  assert message in result.stderr
  assert 'Traceback' not in result.stderr


def test_checkpoint_of_another_variant(golden_checkpoint, tmp_path):
  flags = [f for f in GOLDEN_FLAGS if not f.startswith('--model_variant')]
  result = _export(f'--checkpoint_path={golden_checkpoint}', f'--export_path={tmp_path}/o',
                   '--model_variant=xception_71', *flags)
  assert result.returncode == 2
  assert 'holds backbone xception_65: check --model_variant' in result.stderr
  assert not os.path.exists(tmp_path / 'o')


# Any-size SavedModel and the TFLite flags: MobileNet-v2 + DPC with the golden
# recipe weights (real-scale logits, quick to convert), 129x161.
MOBILENET_CASE = 'mobilenetv2_dpc_os16'
MOBILENET_FLAGS = ['--model_variant=mobilenet_v2', '--output_stride=16', '--crop_size=129,161',
                   '--num_classes=19', f'--dense_prediction_cell_json={cell.RELEASED_CELL_PATH}']


@pytest.fixture(scope='module')
def mobilenet(tmp_path_factory):
  root = tmp_path_factory.mktemp('mobilenet')
  prefix = golden.write_checkpoint(MOBILENET_CASE, str(root))
  model = model_lib.build_model(golden.model_options(MOBILENET_CASE))
  checkpoints.load_tf1_checkpoint(model, prefix)
  return model, prefix, root


@pytest.fixture(scope='module')
def any_size_export(mobilenet):
  """One export.py run: the any-size SavedModel and a full-integer TFLite file."""
  _, prefix, root = mobilenet
  demo_dir = str(root / 'demo')
  # Four demo images in a Cityscapes-named folder (--dataset must have the model's 19
  # classes) are enough calibration for a plumbing test.
  shard_writer.write_split(demo_dir, 'train_fine', [('train', i) for i in range(4)],
                           demo.to_example, 1)
  paths = {'saved_model': str(root / 'any_size'), 'tflite': str(root / 'model.tflite')}
  result = _export(f'--checkpoint_path={prefix}', f'--export_path={paths["saved_model"]}',
                   *MOBILENET_FLAGS, '--min_resize_value=129', '--max_resize_value=129',
                   f'--tflite_path={paths["tflite"]}', '--quantization=full_integer',
                   '--dataset=cityscapes', f'--dataset_dir={demo_dir}',
                   '--representative_split=train_fine', '--num_representative_images=4')
  assert result.returncode == 0, result.stderr[-3000:]
  assert 'TFLite file (full_integer) written to' in result.stdout
  paths['serve'] = tf.saved_model.load(paths['saved_model']).signatures['serving_default']
  return paths


def _any_size_reference(model, images, min_size, max_size):
  """The original export's steps, one by one: resize, pad, predict, crop, resize back."""
  height, width = images.shape[1:3]
  resized = np.stack([preprocess.resize_to_range(tf.constant(i, tf.float32), None, min_size,
                                                 max_size)[0].numpy() for i in images])
  new_h, new_w = resized.shape[1:3]
  padded = np.full((len(images), 129, 161, 3), 127.5, np.float32)
  padded[:, :new_h, :new_w] = resized
  out = model_lib.predict(model, padded)
  labels = np.asarray(out['semantic_predictions'])[:, :new_h, :new_w, None]
  labels = tf.raw_ops.ResizeNearestNeighbor(images=labels, size=[height, width],
                                            align_corners=True, half_pixel_centers=False)
  logits = tf.raw_ops.ResizeBilinear(images=np.asarray(out['logits'])[:, :new_h, :new_w],
                                     size=[height, width], align_corners=True,
                                     half_pixel_centers=False)
  return labels[..., 0].numpy(), logits.numpy(), (new_h, new_w)


@pytest.mark.parametrize('shape', [(1, 300, 200), (2, 90, 250), (1, 129, 161)])
def test_any_size_saved_model_resizes_pads_and_resizes_back(any_size_export, mobilenet,
                                                            shape):
  image = golden.outputs(MOBILENET_CASE)['input_images'][0]
  images = tf.image.resize(image[None], shape[1:], antialias=True).numpy()
  images = np.concatenate([images, images[:, ::-1]])[:shape[0]].clip(0, 255).astype(np.uint8)
  out = any_size_export['serve'](image=tf.constant(images))
  assert out['semantic_predictions'].shape == shape
  assert out['semantic_probabilities'].shape == (*shape, 19)
  labels, logits, resized_size = _any_size_reference(mobilenet[0], images, 129, 129)
  assert max(resized_size) == 129  # Even an image of the crop size is resized to the range.
  np.testing.assert_allclose(out['logits'].numpy(), logits, atol=1e-4 * np.abs(logits).max())
  assert np.mean(out['semantic_predictions'].numpy() == labels) > 0.999


def test_any_size_saved_model_records_its_resize_values(any_size_export):
  with open(os.path.join(any_size_export['saved_model'], 'assets',
                         'deeplab_options.json'), encoding='utf-8') as f:
    recorded = json.load(f)
  assert (recorded['min_resize_value'], recorded['max_resize_value'],
          recorded['resize_factor']) == (129, 129, None)
  # A built-in --dataset is recorded with its colours, which segment.py draws with.
  assert recorded['dataset']['name'] == 'cityscapes'
  assert recorded['dataset']['class_names'][:2] == ['road', 'sidewalk']
  np.testing.assert_array_equal(recorded['dataset']['colormap'],
                                colormaps.colormap('cityscapes')[:19])


def test_resized_image_larger_than_the_crop_is_an_error(mobilenet):
  # Portrait images resized to a larger side of 161 are 161 high: over the 129 crop.
  serve = serving.serving_function(mobilenet[0], min_resize_value=129, max_resize_value=161)
  with pytest.raises(tf.errors.InvalidArgumentError,
                     match='resized image height exceeds the crop height 129 '
                     r'\(lower --max_resize_value'):
    serve(tf.zeros([1, 300, 200, 3], tf.uint8))


def test_exported_tflite_agrees_with_the_saved_model(any_size_export):
  image = golden.outputs(MOBILENET_CASE)['input_images'][0]
  # The client resizes as the SavedModel does (to 103x129) and resizes back.
  segmenter = tflite.TFLiteSegmenter(any_size_export['tflite'], min_resize_value=129,
                                     max_resize_value=129)
  labels = segmenter(image)
  expected = any_size_export['serve'](image=tf.constant(image[None]))['semantic_predictions']
  assert labels.shape == (129, 161)
  # Without --tflite_with_logits only the argmax leaves the model.
  outputs = segmenter.runner.get_output_details()
  assert list(outputs) == ['semantic_predictions']
  assert outputs['semantic_predictions']['dtype'] == np.int32
  # Full-integer calibrated on 4 demo images (another domain than this photo):
  # a plumbing check, not the quality bar (tflite_test.py and the benchmark).
  assert np.mean(labels == expected.numpy()[0]) > 0.8


# What --export_path may replace: a tiny MobileNet-v2, quick to export.
TINY_FLAGS = ['--model_variant=mobilenet_v2', '--depth_multiplier=0.25', '--output_stride=16',
              '--crop_size=33,33', '--num_classes=3']


@pytest.fixture(scope='module')
def tiny_checkpoint(tmp_path_factory):
  options = options_lib.ModelOptions.create(
      num_classes=3, model_variant='mobilenet_v2', depth_multiplier=0.25, crop_size=(33, 33),
      output_stride=16)
  root = tmp_path_factory.mktemp('tiny')
  return checkpoints.save_checkpoint(model_lib.build_model(options), str(root / 'ckpt'))


def test_export_path_holding_a_users_file_is_refused_then_overwritten(tiny_checkpoint,
                                                                      tmp_path):
  folder = tmp_path / 'data'
  folder.mkdir()
  (folder / 'notes.txt').write_text('my notes')
  result = _export(f'--checkpoint_path={tiny_checkpoint}', f'--export_path={folder}',
                   *TINY_FLAGS)
  assert result.returncode == 2, result.stderr[-2000:]
  assert (f'error: --export_path={folder} holds files that are not part of a SavedModel '
          'export (notes.txt); choose another folder or pass --overwrite') in result.stderr
  assert 'Traceback' not in result.stderr
  assert (folder / 'notes.txt').read_text() == 'my notes'
  assert sorted(os.listdir(tmp_path)) == ['data']

  result = _export(f'--checkpoint_path={tiny_checkpoint}', f'--export_path={folder}',
                   *TINY_FLAGS, '--overwrite')
  assert result.returncode == 0, result.stderr[-2000:]
  assert serving.is_saved_model_export(str(folder))
  # A previous export is replaced without --overwrite.
  result = _export(f'--checkpoint_path={tiny_checkpoint}', f'--export_path={folder}',
                   *TINY_FLAGS)
  assert result.returncode == 0, result.stderr[-2000:]
  assert sorted(os.listdir(tmp_path)) == ['data']


def test_export_path_that_is_a_file_is_refused(tiny_checkpoint, tmp_path):
  path = tmp_path / 'model'
  path.write_bytes(b'precious')
  result = _export(f'--checkpoint_path={tiny_checkpoint}', f'--export_path={path}',
                   *TINY_FLAGS)
  assert result.returncode == 2, result.stderr[-2000:]
  assert f'error: --export_path={path} is a file, not a SavedModel folder' in result.stderr
  assert 'Traceback' not in result.stderr
  assert path.read_bytes() == b'precious'
