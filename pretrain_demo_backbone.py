"""Pretrains the demo's backbone: `deeplab-pretrain-demo-backbone`.

Kept so that `python pretrain_demo_backbone.py` runs as before; the code is
deeplab_dpc/tools/pretrain_demo_backbone.py.
"""

from deeplab_dpc.tools import pretrain_demo_backbone

if __name__ == '__main__':
  pretrain_demo_backbone.run()
