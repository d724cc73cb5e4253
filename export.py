"""Exports a DeepLab checkpoint: `deeplab-export`.

Kept so that `python export.py` runs as before; the code is
deeplab_dpc/tools/export.py.
"""

from deeplab_dpc.tools import export

if __name__ == '__main__':
  export.run()
