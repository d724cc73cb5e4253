"""Converts Cityscapes to TFRecords: `deeplab-build-data cityscapes`.

Kept so that `python datasets/build_cityscapes_data.py` runs as before; the code is
deeplab_dpc/tools/build_cityscapes_data.py.
"""

from deeplab_dpc.tools import build_cityscapes_data

if __name__ == '__main__':
  build_cityscapes_data.run()
