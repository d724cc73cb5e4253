"""The demo's pretrained backbone: the role COCO-pretrained MobileNet-v2 plays in the paper.

The proxy task reads a frozen backbone's deep features, so they must already carry
the classes (Chen et al. 2018 cache the features of a COCO-pretrained MobileNet-v2).
The demo's counterpart is a MobileNet-v2 (x0.5) trained by `pretrain` on the demo
generator's own `pretrain` split (4000 scenes of independently drawn shapes, another
distribution than the demo task's one-class scenes, as COCO is to Cityscapes), at output stride 8 and without a decoder, so that the
output-stride-8 features the demo caches are the ones the training shaped. Its
backbone variables ship with the package (`PRETRAINED_CHECKPOINT`, about 3 MB) and
initialise every demo model through the normal `--tf_initial_checkpoint` path
(mode `backbone`); `pretraining.json` beside them records how they were made.

Rebuild it with one command (about 25 minutes on 2 CPU cores):

  python pretrain_demo_backbone.py --output_dir=deeplab_dpc/pretrained/demo_backbone
"""

import dataclasses
import json
import os
import time

from absl import logging
import keras

from deeplab_dpc import checkpoints
from deeplab_dpc.data import demo
from deeplab_dpc.data import descriptors
from deeplab_dpc.data import pipeline
from deeplab_dpc.evaluation import evaluator
from deeplab_dpc import fileio
from deeplab_dpc import model as model_lib
from deeplab_dpc import options as options_lib
from deeplab_dpc.training import trainer

PRETRAINED_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'pretrained',
                              'demo_backbone')
CHECKPOINT_NAME = 'backbone.ckpt'
PRETRAINED_CHECKPOINT = os.path.join(PRETRAINED_DIR, CHECKPOINT_NAME)
PROVENANCE_FILE = 'pretraining.json'
PRETRAIN_SPLIT = 'pretrain'
PRETRAIN_VAL_SPLIT = 'pretrain_val'
MODEL_VARIANT = 'mobilenet_v2'
DEPTH_MULTIPLIER = 0.5
OUTPUT_STRIDE = 8


@dataclasses.dataclass(frozen=True)
class PretrainConfig:
  """The pretraining recipe (the shipped checkpoint's are the defaults).

  Attributes:
    training_number_of_steps: Steps of the pretraining.
    crop_size: Training crop; 129 = whole scenes, so large shapes and their
      surroundings are seen whole.
    batch_size: Training batch.
    base_learning_rate: Poly learning rate.
    batch_norm_decay: Of the backbone's batch norms (their moving statistics ship).
    min_scale_factor, max_scale_factor: Scale augmentation.
    seed: Training seed.
    num_examples: Pretraining scenes (the `pretrain` split's first N).
  """
  training_number_of_steps: int = 2500
  crop_size: int = 129
  batch_size: int = 8
  base_learning_rate: float = 0.07
  batch_norm_decay: float = 0.99
  min_scale_factor: float = 0.75
  max_scale_factor: float = 1.5
  seed: int = 0
  num_examples: int = descriptors.DEMO.splits_to_sizes[PRETRAIN_SPLIT]


def model_options(crop_size: int, **overrides):
  """The pretraining model: MobileNet-v2 x0.5, output stride 8, ASPP head, no decoder."""
  kwargs = dict(num_classes=descriptors.DEMO.num_classes, model_variant=MODEL_VARIANT,
                depth_multiplier=DEPTH_MULTIPLIER, output_stride=OUTPUT_STRIDE,
                crop_size=[crop_size, crop_size])
  kwargs.update(overrides)
  return options_lib.ModelOptions.create(**kwargs)


def require_checkpoint_files(path: str, flag: str) -> None:
  """The cheap half of `check_backbone_checkpoint`: a checkpoint is there at all.

  Raises:
    ValueError: `path` is empty.
    FileNotFoundError: no `<path>.index` (nor a checkpoint folder) there.
  """
  if not path:
    raise ValueError(f'--{flag} is empty; the demo needs a {MODEL_VARIANT} '
                     f'x{DEPTH_MULTIPLIER} backbone checkpoint')
  if not (fileio.exists(path + '.index') or fileio.isdir(path)):
    raise FileNotFoundError(f'--{flag}={path}: no checkpoint there (no {path}.index); the '
                            f'shipped one is {PRETRAINED_CHECKPOINT}')


def check_backbone_checkpoint(path: str, flag: str) -> str:
  """Checks that `path` holds a demo backbone (MobileNet-v2 x0.5); returns the prefix.

  Raises:
    FileNotFoundError: no checkpoint there (names `--flag` and the file).
    ValueError: not a checkpoint, or one of another backbone (names both).
  """
  require_checkpoint_files(path, flag)
  keras.backend.clear_session()
  model = model_lib.build_model(model_options(65))
  try:
    checkpoints.load_checkpoint(model, path, mode=checkpoints.BACKBONE, flag=flag)
  except (ValueError, FileNotFoundError) as e:
    raise ValueError(f'--{flag}={path} is not a {MODEL_VARIANT} x{DEPTH_MULTIPLIER} demo '
                     f'backbone: {e}') from None
  return path


def build_pretraining_data(data_dir: str, num_examples: int) -> str:
  """Writes the `pretrain` split (first `num_examples`) and `pretrain_val`."""
  for split in (PRETRAIN_SPLIT, PRETRAIN_VAL_SPLIT):
    try:
      pipeline.list_files(data_dir, split, 'demo')
      logging.info('%s split already in %s', split, data_dir)
    except FileNotFoundError:
      demo.build(data_dir, splits=(split,), num_shards=8 if split == PRETRAIN_SPLIT else 1,
                 max_examples=num_examples if split == PRETRAIN_SPLIT else None)
  return data_dir


def pretrain(output_dir: str, work_dir: str, config: PretrainConfig = PretrainConfig(),
             log_steps: int = 100) -> dict:
  """Pretrains the demo backbone; writes `output_dir/backbone.ckpt*` and `pretraining.json`.

  Resumes from `work_dir/train` (the trainer's checkpoints) when killed.

  Returns:
    The provenance record: the recipe, the seconds, and the pretrained model's
    mIOU on the held-out pretraining scenes (`pretrain_val`, whole images).
  """
  # Here: demo_pipeline imports this module (it reads the pretrained backbone).
  from deeplab_dpc import demo_pipeline  # pylint: disable=g-import-not-at-top
  data_dir = build_pretraining_data(os.path.join(work_dir, 'data'), config.num_examples)
  start = time.perf_counter()
  options = model_options(config.crop_size, batch_norm_decay=config.batch_norm_decay)
  trained = trainer.train(trainer.TrainConfig(
      dataset='demo', dataset_dir=data_dir, train_split=PRETRAIN_SPLIT,
      train_logdir=os.path.join(work_dir, 'train'), model_options=options,
      train_batch_size=config.batch_size,
      training_number_of_steps=config.training_number_of_steps,
      base_learning_rate=config.base_learning_rate,
      min_scale_factor=config.min_scale_factor, max_scale_factor=config.max_scale_factor,
      seed=config.seed, log_steps=log_steps, save_summaries_steps=log_steps * 5,
      save_interval_secs=120))
  seconds = time.perf_counter() - start
  fileio.makedirs(output_dir)
  prefix = demo_pipeline.write_backbone_checkpoint(trained['model'],
                                                   os.path.join(output_dir, CHECKPOINT_NAME))
  runner = evaluator.Evaluator(
      model_options(129, batch_norm_decay=config.batch_norm_decay,
                    image_pooling_crop_size=[config.crop_size, config.crop_size]),
      evaluator.EvalConfig(dataset='demo', dataset_dir=data_dir, split=PRETRAIN_VAL_SPLIT),
      eval_logdir=os.path.join(work_dir, 'eval'), show_progress=False)
  try:
    result = runner.evaluate_checkpoint(trained['checkpoint'])
  finally:
    runner.close()
  record = {
      'checkpoint': CHECKPOINT_NAME,
      'command': ('python pretrain_demo_backbone.py --output_dir=' + output_dir),
      'model': {'model_variant': MODEL_VARIANT, 'depth_multiplier': DEPTH_MULTIPLIER,
                'output_stride': OUTPUT_STRIDE, 'decoder': None, 'head': 'ASPP (image pooling '
                '+ 1x1)'},
      'data': {'dataset': 'demo', 'split': PRETRAIN_SPLIT, 'examples': config.num_examples},
      'recipe': dataclasses.asdict(config),
      'global_step': int(trained['global_step']),
      'train_seconds': round(seconds, 1),
      'pretrain_val_miou': float(result['miou']),
      'pretrain_val_per_class_iou': result['per_class_iou'],
  }
  fileio.atomic_write(os.path.join(output_dir, PROVENANCE_FILE),
                      json.dumps(record, indent=1) + '\n')
  logging.info('Pretrained demo backbone in %s: pretrain_val mIOU %.4f after %d steps '
               '(%.0f s)', prefix, record['pretrain_val_miou'], record['global_step'], seconds)
  return record
