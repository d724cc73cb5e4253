"""Datasets and input pipeline: descriptors, TFRecord format, builders, tf.data.

Submodules are imported on demand (``from deeplab_dpc.data import pipeline``)
so that importing the package stays cheap for code that only needs the
descriptors.
"""
