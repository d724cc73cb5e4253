"""The command-line tools: the code of the `deeplab-*` console scripts and top-level CLIs.

TensorFlow is an extra (`[cpu]` or `[gpu]`), since no single wheel fits both kinds of
machine; a tool started without one says which to install in one line instead of
failing deep inside an import.
"""

import importlib.util
import sys

if importlib.util.find_spec('tensorflow') is None:
  print('error: TensorFlow is not installed: pip install "deeplab-dpc[cpu]" '
        '(or "deeplab-dpc[gpu]" on a machine with an NVIDIA GPU)', file=sys.stderr)
  sys.exit(2)
