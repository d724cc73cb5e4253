"""Converts PASCAL-Person-Part to TFRecords: `deeplab-build-data person_part`.

Kept so that `python datasets/build_person_part_data.py` runs as before; the code is
deeplab_dpc/tools/build_person_part_data.py.
"""

from deeplab_dpc.tools import build_person_part_data

if __name__ == '__main__':
  build_person_part_data.run()
