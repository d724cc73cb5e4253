"""Searches for a dense prediction cell: `deeplab-search`.

Kept so that `python search.py` runs as before; the code is
deeplab_dpc/tools/search.py.
"""

from deeplab_dpc.tools import search

if __name__ == '__main__':
  search.run()
