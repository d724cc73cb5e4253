"""Converts PASCAL VOC 2012 to TFRecords: `deeplab-build-data voc2012`.

Kept so that `python datasets/build_voc2012_data.py` runs as before; the code is
deeplab_dpc/tools/build_voc2012_data.py.
"""

from deeplab_dpc.tools import build_voc2012_data

if __name__ == '__main__':
  build_voc2012_data.run()
