"""Converts your own images and masks to TFRecords: `deeplab-build-data custom`.

Kept so that `python datasets/build_custom_data.py` runs as before; the code is
deeplab_dpc/tools/build_custom_data.py.
"""

from deeplab_dpc.tools import build_custom_data

if __name__ == '__main__':
  build_custom_data.run()
