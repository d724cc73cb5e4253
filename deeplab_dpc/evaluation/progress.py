"""A progress line for evaluation and visualisation: images done, images/s and ETA.

On a terminal the line is redrawn in place; otherwise (logs, CI) one line is
logged at most every `log_every_secs`, so long runs do not flood their logs.
"""

import sys
import time
from typing import Callable, Optional, TextIO

from absl import logging


def format_seconds(seconds: float) -> str:
  """'1:02:03' / '2:03' style duration."""
  seconds = max(0, int(round(seconds)))
  hours, rest = divmod(seconds, 3600)
  minutes, secs = divmod(rest, 60)
  return f'{hours}:{minutes:02d}:{secs:02d}' if hours else f'{minutes}:{secs:02d}'


class Progress:
  """Counts processed images and reports throughput and the time left.

  Args:
    total: Expected number of images, or None if unknown (no ETA then).
    what: Label of the line (e.g. 'eval ckpt-100').
    stream: Where a terminal line is drawn (default stderr).
    enabled: False silences it (library use, tests).
    log_every_secs: Minimum time between logged lines off a terminal.
    clock: Monotonic clock (tests replace it).
  """

  def __init__(self, total: Optional[int], what: str = '', stream: Optional[TextIO] = None,
               enabled: bool = True, log_every_secs: float = 30.0,
               clock: Callable[[], float] = time.monotonic):
    self.total = total
    self.what = what
    self.stream = stream or sys.stderr
    self.enabled = enabled
    self.log_every_secs = log_every_secs
    self.clock = clock
    self.done = 0
    self.start = clock()
    self._last_report = None
    self._interactive = enabled and hasattr(self.stream, 'isatty') and self.stream.isatty()

  @property
  def elapsed(self) -> float:
    return self.clock() - self.start

  def rate(self) -> float:
    """Images per second so far (0 before the first image)."""
    elapsed = self.elapsed
    return self.done / elapsed if elapsed > 0 else 0.0

  def line(self) -> str:
    """The current progress text, e.g. 'eval: 40/80 images  12.5 images/s  ETA 0:03'."""
    rate = self.rate()
    total = f'/{self.total}' if self.total else ''
    text = f'{self.what + ": " if self.what else ""}{self.done}{total} images  {rate:.2f} images/s'
    if self.total and rate > 0 and self.done < self.total:
      text += f'  ETA {format_seconds((self.total - self.done) / rate)}'
    elif self.done:
      text += f'  elapsed {format_seconds(self.elapsed)}'
    return text

  def update(self, num_images: int) -> None:
    """Adds `num_images` processed images and reports when due."""
    self.done += int(num_images)
    if not self.enabled:
      return
    now = self.clock()
    if self._interactive:
      self.stream.write('\r' + self.line() + '\033[K')
      self.stream.flush()
    elif self._last_report is None or now - self._last_report >= self.log_every_secs:
      logging.info('%s', self.line())
      self._last_report = now

  def finish(self) -> None:
    """Ends the line (terminal) or logs the final throughput."""
    if not self.enabled:
      return
    if self._interactive:
      self.stream.write('\r' + self.line() + '\033[K\n')
      self.stream.flush()
    else:
      logging.info('%s', self.line())
