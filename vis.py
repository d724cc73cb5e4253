"""Writes DeepLab predictions as images: `deeplab-vis`.

Kept so that `python vis.py` runs as before; the code is
deeplab_dpc/tools/vis.py.
"""

from deeplab_dpc.tools import vis

if __name__ == '__main__':
  vis.run()
