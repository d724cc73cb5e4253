"""Tests of the own-dataset builder CLI: the contract other checks rely on."""

import json
import os

import numpy as np
from PIL import Image

from datasets import cli_testing
from deeplab_dpc.data import tfrecord


def _write_folder(root, stems_by_split):
  """Writes images/, masks/ (index PNGs of ids 0-2 and 255) and lists/; returns the folders."""
  rng = np.random.default_rng(0)
  folders = {k: os.path.join(root, k) for k in ('images', 'masks', 'lists')}
  for folder in folders.values():
    os.makedirs(folder)
  for split, stems in stems_by_split.items():
    with open(os.path.join(folders['lists'], split + '.txt'), 'w') as f:
      f.write(''.join(s + '\n' for s in stems))
    for i, stem in enumerate(stems):
      height, width = 6 + i, 9
      Image.fromarray(rng.integers(0, 256, (height, width, 3), np.uint8)).save(
          os.path.join(folders['images'], stem + '.jpg'))
      Image.fromarray(rng.choice(np.asarray([0, 1, 2, 255], np.uint8), (height, width))).save(
          os.path.join(folders['masks'], stem + '.png'))
  return folders


def test_list_folder_and_num_classes_write_info_and_shards(tmp_path):
  folders = _write_folder(str(tmp_path), {'train': ['a', 'b', 'c'], 'val': ['d']})
  out = tmp_path / 'out'
  result = cli_testing.run_cli(
      'build_custom_data.py', f'--image_folder={folders["images"]}',
      f'--semantic_segmentation_folder={folders["masks"]}', f'--list_folder={folders["lists"]}',
      f'--output_dir={out}', '--num_classes=3')
  assert result.returncode == 0, result.stderr[-2000:]
  with open(out / 'dataset_info.json') as f:
    info = json.load(f)
  assert info['num_classes'] == 3 and info['ignore_label'] == 255
  assert info['class_names'] == ['class_0', 'class_1', 'class_2']
  assert info['splits_to_sizes'] == {'train': 3, 'val': 1}
  assert 'colormap' not in info
  assert sorted(os.listdir(out)) == sorted(
      ['dataset_info.json'] + [f'{s}-{i:05d}-of-00004.tfrecord' for s in ('train', 'val')
                               for i in range(4)])
  examples = [e for p in tfrecord.find_shards(str(out), 'train') for e in tfrecord.read_examples(p)]
  assert [(e['image_name'], e['height']) for e in examples] == [('a', 6), ('b', 7), ('c', 8)]
  assert 'train: 3 examples' in result.stdout


def test_bad_mask_values_exit_2_with_one_line_writing_nothing(tmp_path):
  folders = _write_folder(str(tmp_path), {'train': ['a', 'b'], 'val': ['c']})
  Image.fromarray(np.full((7, 9), 9, np.uint8)).save(os.path.join(folders['masks'], 'b.png'))
  # An RGB colour mask read through --colormap (the alias of --color_map).
  Image.fromarray(np.zeros((6, 9, 3), np.uint8)).save(os.path.join(folders['masks'], 'a.png'))
  color_map = tmp_path / 'colours.json'
  color_map.write_text('{"#000000": "background"}')
  out = tmp_path / 'out'
  result = cli_testing.run_cli(
      'build_custom_data.py', f'--image_folder={folders["images"]}',
      f'--semantic_segmentation_folder={folders["masks"]}', f'--list_folder={folders["lists"]}',
      f'--output_dir={out}', '--class_names=background,cat,dog', f'--colormap={color_map}')
  assert result.returncode == 2
  line = cli_testing.last_stderr_line(result)
  assert line.startswith(f'error: Mask {folders["masks"]}/b.png has values [9] '), line
  assert 'Traceback' not in result.stderr
  assert not out.exists()
