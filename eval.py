"""Evaluates DeepLab checkpoints: `deeplab-eval`.

Kept so that `python eval.py` runs as before; the code is
deeplab_dpc/tools/eval.py.
"""

from deeplab_dpc.tools import eval as eval_tool

if __name__ == '__main__':
  eval_tool.run()
