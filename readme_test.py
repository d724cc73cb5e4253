"""The README's examples run as written, on tiny inputs.

Every ```sh and ```python block of README.md runs, in README order, in one scratch
folder that links the checkout's scripts and package, so each relative path of the
examples works and every output lands in the scratch folder. What cannot run here
is replaced, and each replacement must still match the README (the table cannot
rot): the download by a local stand-in tarball in the released layout (an
Xception-71 + DPC checkpoint in the original's name-based format), the photo by a
small image, sizes and step counts by tiny ones. Plain ``` blocks (the quick start,
TensorBoard) are shown, not run: the demo and the suite have tests of their own.
"""

import os
import re
import subprocess
import sys
import tarfile

import numpy as np
from PIL import Image

from deeplab_dpc import cell
from deeplab_dpc import checkpoints
from deeplab_dpc import model as model_lib
from deeplab_dpc import options as options_lib
from deeplab_dpc.testing import recipe_checkpoint

ROOT = os.path.dirname(os.path.abspath(__file__))
_README = os.path.join(ROOT, 'README.md')
_DATASETS_DOC = os.path.join(ROOT, 'docs', 'datasets.md')
_TARBALL = 'deeplab_cityscapes_xception71_trainfine_2018_09_08.tar.gz'
# The stand-in release's crop (the README's 1025x2049, tiny) and photo size.
_CROP = (65, 129)
_PHOTO = (48, 96)

# (README text, what runs instead). Each must occur in the README.
_REPLACEMENTS = (
    (f'wget -q http://download.tensorflow.org/models/{_TARBALL}', f'test -f {_TARBALL}'),
    ('--crop_size=1025,2049', f'--crop_size={_CROP[0]},{_CROP[1]}'),
    ("crop_size='1025,2049'", f"crop_size='{_CROP[0]},{_CROP[1]}'"),
    ('--min_resize_value=1024', f'--min_resize_value={_CROP[0] - 1}'),
    ('--max_resize_value=2048', f'--max_resize_value={_CROP[1] - 1}'),
    ('--training_number_of_steps=400', '--training_number_of_steps=3'),
    ('--training_number_of_steps=150', '--training_number_of_steps=3'),
    ('--proxy_training_number_of_steps=10 --max_trials=20',
     '--proxy_training_number_of_steps=2 --max_trials=2'),
    ('inference_scales=(0.75, 1.0, 1.25)', 'inference_scales=(0.75, 1.0)'),
)
# What the README's examples write, checked after they ran.
_OUTPUTS = (
    'pictures/street_prediction.png', 'pictures/street_labels.png',
    'exports/cityscapes_dpc/saved_model.pb', 'exports/demo/saved_model.pb',
    'runs/eval/metrics.json', 'runs/search/trials.jsonl', 'my_tfrecords/dataset_info.json',
    'runs/my_train/checkpoint',
)


def _blocks(path: str) -> list[tuple[str, str]]:
  """(language, code) of every ```sh and ```python block of a Markdown file."""
  with open(path, encoding='utf-8') as f:
    text = f.read()
  return re.findall(r'^```(sh|python)\n(.*?)^```$', text, flags=re.MULTILINE | re.DOTALL)


def _released_tarball(folder: str) -> None:
  """A stand-in for the released tarball: train_fine/model.ckpt.* (+ a frozen graph)."""
  options = options_lib.ModelOptions.create(
      num_classes=19, model_variant='xception_71', crop_size=f'{_CROP[0]},{_CROP[1]}', output_stride=16,
      decoder_output_stride='4', dense_prediction_cell_json=cell.RELEASED_CELL_PATH)
  model = model_lib.build_model(options)
  tensors = {name: recipe_checkpoint.recipe_value(name, variable.shape)
             for name, variable in checkpoints.original_names(model).items()}
  inner = os.path.join(folder, 'train_fine')
  os.makedirs(inner)
  recipe_checkpoint.write_tf1_checkpoint(tensors, os.path.join(inner, 'model.ckpt'))
  with open(os.path.join(inner, 'frozen_inference_graph.pb'), 'wb') as f:
    f.write(b'not read')
  with tarfile.open(os.path.join(folder, _TARBALL), 'w:gz') as tar:
    tar.add(inner, arcname='train_fine')


def _scratch(tmp_path) -> str:
  """The folder the examples run in: the checkout's scripts and package linked in."""
  scratch = str(tmp_path)
  for name in os.listdir(ROOT):
    if name.endswith('.py') or name in ('deeplab_dpc', 'datasets'):
      os.symlink(os.path.join(ROOT, name), os.path.join(scratch, name))
  return scratch


def _tiny(code: str, used: set) -> str:
  for old, new in _REPLACEMENTS:
    if old in code:
      used.add(old)
      code = code.replace(old, new)
  return code


def test_every_readme_example_runs(tmp_path):
  blocks = _blocks(_README)
  assert len(blocks) >= 7, 'the README lost its examples'
  scratch = _scratch(tmp_path)
  _released_tarball(scratch)
  rng = np.random.default_rng(0)
  Image.fromarray(rng.integers(0, 255, (*_PHOTO, 3), dtype=np.uint8)).save(
      os.path.join(scratch, 'street.png'))
  # The my_data folder of "Your own data": docs/datasets.md's script makes it.
  (maker,) = [code for language, code in _blocks(_DATASETS_DOC)
              if language == 'python' and 'my_data/images' in code]
  env = {**os.environ, 'TF_CPP_MIN_LOG_LEVEL': '2', 'PYTHONPATH': ROOT,
         'PATH': os.path.dirname(sys.executable) + os.pathsep + os.environ.get('PATH', '')}
  used = set()
  for index, (language, code) in enumerate([('python', maker), *blocks]):
    code = _tiny(code, used)
    command = (['bash', '-euo', 'pipefail', '-c', code] if language == 'sh'
               else [sys.executable, '-c', code])
    result = subprocess.run(command, cwd=scratch, env=env, capture_output=True, text=True,
                            check=False, timeout=900)
    assert result.returncode == 0, (
        f'README block {index} ({code.splitlines()[0]}) failed:\n{result.stderr[-3000:]}')
  assert used == {old for old, _ in _REPLACEMENTS}, (
      'replacements no longer in the README: '
      f'{sorted({old for old, _ in _REPLACEMENTS} - used)}')
  for output in _OUTPUTS:
    assert os.path.exists(os.path.join(scratch, output)), output
  with Image.open(os.path.join(scratch, 'pictures', 'street_labels.png')) as labels:
    assert labels.size == (_PHOTO[1], _PHOTO[0])
