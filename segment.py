"""Segments images with an exported SavedModel: `deeplab-segment`.

Kept so that `python segment.py` runs as before; the code is
deeplab_dpc/tools/segment.py.
"""

from deeplab_dpc.tools import segment

if __name__ == '__main__':
  segment.run()
