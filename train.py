"""Trains DeepLab: `deeplab-train`.

Kept so that `python train.py` runs as before; the code is
deeplab_dpc/tools/train.py.
"""

from deeplab_dpc.tools import train

if __name__ == '__main__':
  train.run()
