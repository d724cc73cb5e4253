"""The synthetic demo dataset: procedurally drawn scenes, identical on every build.

Two kinds of 129x129 scene share one drawing code (shapes of random colour on a
textured, low-saturation background; later shapes occlude earlier ones; colour
carries no class information). The classes are background, disc, square,
triangle, ring and dot grid.

* **The demo task** (`train`, `val`): every scene belongs to one class. It shows
  3-4 shapes of that class (radius 10-34 pixels), each centred in another quadrant
  of the image, and 2-3 *blobs*: speckled, irregular shapes that look alike in
  every scene and are labelled with the scene's class. A blob's own pixels do not
  tell its class; the other shapes in the image do. Every half of the image holds
  a shape's centre, most quadrants do, so the task rewards context over a half of
  the image or more, which a dense prediction cell gets from coarse pyramid
  pooling (grids 1x1, 1x2, 2x1; 2x2 mostly) or large rates, and a cell without it
  cannot label blobs better than chance: cells truly differ, as the search needs.
* **Pretraining scenes** (`pretrain`, the shipped demo backbone's data, and
  `pretrain_val`, 80 more to score its pretraining on): 3-6 shapes
  of independently drawn classes (radius 5-34), no blobs. Another distribution
  than the task, as the paper's COCO pretraining is to Cityscapes. Two classes need
  context beyond a small receptive field: the inside of a ring is background while
  a disc of the same colour is filled, and the dots of a dot grid look exactly like
  small squares, recognisable only from their 3x3 arrangement.

Scenes depend only on (split, index), so the builder, the tfds builder and any
subset of them produce the same pixels.
"""
import math

import numpy as np

from deeplab_dpc.data import descriptors
from deeplab_dpc.data import image_io
from deeplab_dpc.data import shard_writer
from deeplab_dpc.data import tfrecord

IMAGE_SIZE = 129
DEFAULT_NUM_SHARDS = 4
SPLITS = ('train', 'val')
_SEED = 20181203  # Any fixed number; it defines the dataset.
# The pretraining scenes' held-out split keeps seed 2, so its scenes are the ones the
# shipped backbone's `pretraining.json` was scored on.
_SPLIT_SEEDS = {'train': 11, 'val': 12, 'pretrain': 3, 'pretrain_val': 2}
PRETRAINING_SPLITS = ('pretrain', 'pretrain_val')

DISC, SQUARE, TRIANGLE, RING, DOT_GRID = 1, 2, 3, 4, 5
# Radius ranges (pixels) per class: rings and grids need room for their holes/dots.
_RADIUS_RANGE = {DISC: (5, 34), SQUARE: (5, 34), TRIANGLE: (6, 34), RING: (10, 34),
                 DOT_GRID: (12, 34)}
# The demo task's shapes are at least this large: context over the image, not the
# recognition of tiny shapes at output stride 8, is what it is about.
_TASK_MIN_RADIUS = 10
_TASK_SHAPES = (3, 4)  # Shapes of the scene's class per task scene, one per quadrant.
_TASK_BLOBS = (2, 3)  # Blobs per task scene (inclusive).
_BLOB_RADIUS_RANGE = (8, 26)


def image_name(split, index):
  """Returns the `image/filename` of demo example `index` of `split`."""
  return f'{split}_{index:05d}'


def _hsv_to_rgb(h, s, v):
  i = int(h * 6) % 6
  f = h * 6 - math.floor(h * 6)
  p, q, t = v * (1 - s), v * (1 - f * s), v * (1 - (1 - f) * s)
  return [(v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q)][i]


def _background(rng, yy, xx):
  base = rng.uniform(70, 190) + rng.uniform(-20, 20, size=3)
  amplitude = rng.uniform(12, 35)
  kind = rng.integers(4)
  if kind == 0:  # Stripes.
    angle, period = rng.uniform(0, math.pi), rng.uniform(6, 20)
    pattern = np.sin(2 * math.pi * (xx * math.cos(angle) + yy * math.sin(angle)) / period)
  elif kind == 1:  # Checkerboard.
    cell = rng.uniform(6, 18)
    pattern = ((np.floor(xx / cell) + np.floor(yy / cell)) % 2) * 2.0 - 1.0
  elif kind == 2:  # Blotches: coarse random grid, smoothly upsampled.
    cells = int(rng.integers(4, 9))
    coarse = rng.uniform(-1, 1, size=(cells + 1, cells + 1))
    gy, gx = yy / (IMAGE_SIZE - 1) * cells, xx / (IMAGE_SIZE - 1) * cells
    y0 = np.minimum(gy.astype(int), cells - 1)
    x0 = np.minimum(gx.astype(int), cells - 1)
    fy, fx = gy - y0, gx - x0
    pattern = (coarse[y0, x0] * (1 - fy) * (1 - fx) + coarse[y0 + 1, x0] * fy * (1 - fx) +
               coarse[y0, x0 + 1] * (1 - fy) * fx + coarse[y0 + 1, x0 + 1] * fy * fx)
  else:  # Linear ramp.
    angle = rng.uniform(0, 2 * math.pi)
    pattern = ((xx * math.cos(angle) + yy * math.sin(angle)) / IMAGE_SIZE) * 2.0
  image = base[None, None, :] + amplitude * pattern[..., None]
  return image


def _shape_mask(kind, rng, yy, xx, min_radius=0, quadrant=None):
  """A shape's mask; centred anywhere, or in `quadrant` (0-3, row-major) when given."""
  low, high = _RADIUS_RANGE[kind]
  low = max(low, min_radius)
  radius = math.exp(rng.uniform(math.log(low), math.log(high)))
  if quadrant is None:
    cy, cx = rng.uniform(0, IMAGE_SIZE, size=2)
  else:
    half = IMAGE_SIZE / 2
    cy, cx = (np.array(divmod(int(quadrant), 2)) + rng.uniform(0, 1, size=2)) * half
  angle = rng.uniform(0, 2 * math.pi)
  dy, dx = yy - cy, xx - cx
  # Coordinates in the shape's rotated frame.
  u = dx * math.cos(angle) + dy * math.sin(angle)
  v = -dx * math.sin(angle) + dy * math.cos(angle)
  if kind == DISC:
    return dx * dx + dy * dy <= radius * radius
  if kind == SQUARE:
    half = 0.85 * radius
    return (np.abs(u) <= half) & (np.abs(v) <= half)
  if kind == TRIANGLE:
    mask = np.ones_like(u, dtype=bool)
    for k in range(3):
      normal = angle + k * 2 * math.pi / 3
      # An equilateral triangle's inradius is half its circumradius.
      mask &= dx * math.cos(normal) + dy * math.sin(normal) <= radius / 2
    return mask
  if kind == RING:
    distance2 = dx * dx + dy * dy
    return (distance2 <= radius * radius) & (distance2 >= (0.55 * radius) ** 2)
  # Dot grid: 3x3 small squares, each alone indistinguishable from a small square.
  spacing = 0.6 * radius
  half = 0.28 * spacing
  mask = np.zeros_like(u, dtype=bool)
  for gy in (-1, 0, 1):
    for gx in (-1, 0, 1):
      mask |= (np.abs(u - gx * spacing) <= half) & (np.abs(v - gy * spacing) <= half)
  return mask


def _blob_mask(rng, yy, xx):
  """An irregular, smoothly wobbling disc: the same kind of outline in every class."""
  low, high = _BLOB_RADIUS_RANGE
  radius = math.exp(rng.uniform(math.log(low), math.log(high)))
  cy, cx = rng.uniform(0, IMAGE_SIZE, size=2)
  dy, dx = yy - cy, xx - cx
  theta = np.arctan2(dy, dx)
  wobble = (1 + 0.25 * np.sin(3 * theta + rng.uniform(0, 2 * math.pi)) +
            0.15 * np.sin(5 * theta + rng.uniform(0, 2 * math.pi)))
  return np.sqrt(dx * dx + dy * dy) <= radius * wobble


def _random_color(rng):
  return np.array(_hsv_to_rgb(rng.uniform(), rng.uniform(0.55, 1.0),
                              rng.uniform(0.55, 1.0))) * 255.0


def _shape_fill(rng, color, yy, xx, shape):
  if rng.uniform() < 0.3:
    # Two-tone stripes inside the shape: texture that is not a class cue.
    period, angle = rng.uniform(4, 10), rng.uniform(0, math.pi)
    stripes = np.sin(2 * math.pi * (xx * math.cos(angle) + yy * math.sin(angle))
                     / period) > 0
    return np.where(stripes[..., None], color, color * 0.6)
  return np.broadcast_to(color, shape)


def _pretrain_scene(rng, yy, xx, image, label):
  for _ in range(int(rng.integers(3, 7))):
    kind = int(rng.integers(1, len(descriptors.DEMO_CLASSES)))
    mask = _shape_mask(kind, rng, yy, xx)
    fill = _shape_fill(rng, _random_color(rng), yy, xx, image.shape)
    image = np.where(mask[..., None], fill, image)
    label[mask] = kind
  return image


def _task_scene(rng, yy, xx, image, label):
  kind = int(rng.integers(1, len(descriptors.DEMO_CLASSES)))
  shapes = int(rng.integers(_TASK_SHAPES[0], _TASK_SHAPES[1] + 1))
  # Shapes in distinct quadrants: any half of the image holds one, so context over
  # a half (not only over the whole image) tells a blob's class.
  items = ([int(q) for q in rng.permutation(4)[:shapes]] +
           ['blob'] * int(rng.integers(_TASK_BLOBS[0], _TASK_BLOBS[1] + 1)))
  rng.shuffle(items)
  for item in items:
    color = _random_color(rng)
    if item == 'blob':
      mask = _blob_mask(rng, yy, xx)
      # Speckled: a look no shape has, the same in every class.
      fill = color * 0.5 + 60.0 + rng.normal(0.0, 25.0, size=image.shape)
    else:
      mask = _shape_mask(kind, rng, yy, xx, min_radius=_TASK_MIN_RADIUS, quadrant=item)
      fill = _shape_fill(rng, color, yy, xx, image.shape)
    image = np.where(mask[..., None], fill, image)
    label[mask] = kind
  return image


def render(split, index):
  """Draws demo example `index` of `split`.

  Args:
    split: 'train' or 'val' (the demo task), 'pretrain' or 'pretrain_val'
      (pretraining scenes).
    index: Example index, 0 <= index < the split's size.

  Returns:
    (image uint8 [129, 129, 3], label uint8 [129, 129]).

  Raises:
    ValueError: If the split is unknown.
  """
  if split not in _SPLIT_SEEDS:
    raise ValueError(f'Unknown demo split {split!r}; expected one of '
                     f'{tuple(_SPLIT_SEEDS)}.')
  rng = np.random.default_rng([_SEED, _SPLIT_SEEDS[split], index])
  yy, xx = np.mgrid[0:IMAGE_SIZE, 0:IMAGE_SIZE].astype(np.float64)
  image = _background(rng, yy, xx)
  label = np.zeros((IMAGE_SIZE, IMAGE_SIZE), dtype=np.uint8)
  scene = _pretrain_scene if split in PRETRAINING_SPLITS else _task_scene
  image = scene(rng, yy, xx, image, label)
  image += rng.normal(0.0, 3.0, size=image.shape)
  return np.clip(np.rint(image), 0, 255).astype(np.uint8), label


def to_example(item):
  """Renders and serializes the (split, index) demo example."""
  split, index = item
  image, label = render(split, index)
  return tfrecord.encode_example(image_io.encode_png(image), image_io.encode_png(label),
                                 image_name(split, index), IMAGE_SIZE, IMAGE_SIZE, 'png')


def build(output_dir, splits=SPLITS, num_shards=DEFAULT_NUM_SHARDS, max_examples=None):
  """Writes the demo splits as TFRecords; the same bytes on every run.

  Args:
    output_dir: Output folder of the shards.
    splits: Which of 'train', 'val', 'pretrain' and 'pretrain_val' (the pretrained
      backbone's scenes, disjoint from the others) to write.
    num_shards: Shards per split.
    max_examples: Write only the first N examples of each split (None: all).

  Returns:
    Dict split -> number of examples written.
  """
  written = {}
  for split in splits:
    size = descriptors.DEMO.splits_to_sizes[descriptors.DEMO.canonical_split(split)]
    if max_examples is not None:
      size = min(size, int(max_examples))
    shard_writer.write_split(output_dir, split, [(split, i) for i in range(size)],
                             to_example, num_shards)
    written[split] = size
  return written
