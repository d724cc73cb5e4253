"""The demo dataset as a tensorflow-datasets builder: `tfds.load('deeplab_dpc_demo')`.

Importing this module registers the builder. It generates exactly the
examples of `deeplab_dpc.data.demo` (same pixels, same names), with the
features 'image', 'segmentation_label' and 'image_id'; splits 'train' and
'val'. Nothing is downloaded.
"""

from etils import epath
import tensorflow_datasets as tfds

from deeplab_dpc.data import demo
from deeplab_dpc.data import descriptors

TFDS_NAME = 'deeplab_dpc_demo'


class DeeplabDpcDemo(tfds.core.GeneratorBasedBuilder):
  """Procedural shapes scenes for semantic segmentation (see `deeplab_dpc.data.demo`)."""

  VERSION = tfds.core.Version('1.0.0')
  RELEASE_NOTES = {'1.0.0': 'First release.'}
  # tfds 4.9.10 locates a builder's code through `importlib_resources`,
  # which it does not install; giving the path directly avoids that lookup.
  code_path = epath.Path(__file__)

  def _info(self):
    size = demo.IMAGE_SIZE
    return self.dataset_info_from_configs(
        description=demo.__doc__,
        features=tfds.features.FeaturesDict({
            'image': tfds.features.Image(shape=(size, size, 3), encoding_format='png'),
            'segmentation_label': tfds.features.Image(shape=(size, size, 1),
                                                      encoding_format='png'),
            'image_id': tfds.features.Text(),
        }),
        supervised_keys=('image', 'segmentation_label'),
    )

  def _split_generators(self, dl_manager):
    del dl_manager  # Nothing to download: the scenes are drawn.
    return {split: self._generate_examples(split) for split in demo.SPLITS}

  def _generate_examples(self, split):
    for index in range(descriptors.DEMO.splits_to_sizes[split]):
      image, label = demo.render(split, index)
      name = demo.image_name(split, index)
      yield name, {'image': image, 'segmentation_label': label[..., None],
                   'image_id': name}
