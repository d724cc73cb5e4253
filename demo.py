"""The whole mission end to end on the demo set: `deeplab-demo`.

Kept so that `python demo.py` runs as before; the code is
deeplab_dpc/tools/demo.py.
"""

from deeplab_dpc.tools import demo

if __name__ == '__main__':
  demo.run()
