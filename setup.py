"""deeplab-dpc: the Dense Prediction Cell and its architecture search in TF2 / Keras 3."""

import setuptools

# TensorFlow and Keras internals move between releases: pin them exactly.
_TENSORFLOW_VERSION = '2.21.0'
_KERAS_VERSION = '3.15.1'

setuptools.setup(
    name='deeplab-dpc',
    version='0.1.0',
    description=('DeepLab with the Dense Prediction Cell (Chen et al., NeurIPS 2018) '
                 'and its architecture search, faithful to the original release.'),
    python_requires='>=3.10',
    packages=setuptools.find_packages(include=['deeplab_dpc', 'deeplab_dpc.*']),
    package_data={'deeplab_dpc': ['cells/*.json', 'pretrained/demo_backbone/*']},
    install_requires=[
        f'keras=={_KERAS_VERSION}',
        'tensorflow-datasets==4.9.10',
        'numpy>=1.26',
        'absl-py>=2.1',
        'pillow>=10.0',
        'keras-tuner==1.4.8',
        # KerasTuner imports tensorboard, which TF 2.21 no longer brings.
        f'tensorboard=={_TENSORFLOW_VERSION}',
        'cityscapesscripts==2.3.0',
    ],
    extras_require={
        # One of these two is needed: the CPU wheel is smaller and silent at import,
        # the full wheel (with CUDA libraries) is what GPU machines need.
        'cpu': [f'tensorflow-cpu=={_TENSORFLOW_VERSION}'],
        'gpu': [f'tensorflow[and-cuda]=={_TENSORFLOW_VERSION}'],
        'test': ['pytest>=8.0', 'pytest-xdist>=3.5'],
    },
)
