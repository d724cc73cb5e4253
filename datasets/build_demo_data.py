"""Builds the synthetic demo TFRecords: `deeplab-build-data demo`.

Kept so that `python datasets/build_demo_data.py` runs as before; the code is
deeplab_dpc/tools/build_demo_data.py.
"""

from deeplab_dpc.tools import build_demo_data

if __name__ == '__main__':
  build_demo_data.run()
