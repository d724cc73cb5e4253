"""Plain numpy references for what the original computes, for tests.

Written independently of the library (per pixel, float64), so a test comparing
against them checks the library's semantics, not its arithmetic twice.
"""

import numpy as np


def resize_bilinear(x, out_h, out_w):
  """Reference bilinear resize with align_corners=True, one output pixel at a time."""
  _, in_h, in_w, _ = x.shape
  out = np.zeros((x.shape[0], out_h, out_w, x.shape[3]), np.float64)
  # align_corners maps the first and last pixel centres onto each other; a
  # one-pixel output samples position 0 (what TF's kernel does).
  scale_h = (in_h - 1) / (out_h - 1) if out_h > 1 else 0.0
  scale_w = (in_w - 1) / (out_w - 1) if out_w > 1 else 0.0
  for i in range(out_h):
    y = i * scale_h
    y0 = min(int(np.floor(y)), in_h - 1)
    y1 = min(y0 + 1, in_h - 1)
    fy = y - y0
    for j in range(out_w):
      xx = j * scale_w
      x0 = min(int(np.floor(xx)), in_w - 1)
      x1 = min(x0 + 1, in_w - 1)
      fx = xx - x0
      top = (1 - fx) * x[:, y0, x0] + fx * x[:, y0, x1]
      bottom = (1 - fx) * x[:, y1, x0] + fx * x[:, y1, x1]
      out[:, i, j] = (1 - fy) * top + fy * bottom
  return out


def avg_pool_valid(x, kh, kw):
  """Average pooling, stride 1, VALID, in float64."""
  _, h, w, _ = x.shape
  out = np.zeros((x.shape[0], h - kh + 1, w - kw + 1, x.shape[3]))
  for i in range(h - kh + 1):
    for j in range(w - kw + 1):
      out[:, i, j] = x[:, i:i + kh, j:j + kw].mean(axis=(1, 2))
  return out
