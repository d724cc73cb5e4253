"""The progress line: images/s, ETA, and throttled logging off a terminal."""

import io

from absl import logging

from deeplab_dpc.evaluation import progress


class Clock:

  def __init__(self):
    self.now = 100.0

  def __call__(self):
    return self.now


def test_format_seconds():
  assert progress.format_seconds(5) == '0:05'
  assert progress.format_seconds(125) == '2:05'
  assert progress.format_seconds(3725) == '1:02:05'


def test_rate_and_eta(monkeypatch):
  clock = Clock()
  logged = []
  monkeypatch.setattr(logging, 'info', lambda fmt, *args: logged.append(fmt % args))
  bar = progress.Progress(80, 'eval ckpt-7', stream=io.StringIO(), log_every_secs=30,
                          clock=clock)
  clock.now += 4
  bar.update(20)
  assert bar.line() == 'eval ckpt-7: 20/80 images  5.00 images/s  ETA 0:12'
  clock.now += 1
  bar.update(5)  # Within 30 s of the last line: not logged.
  clock.now += 30
  bar.update(5)
  clock.now += 1
  bar.update(50)
  bar.finish()
  assert logged[0] == 'eval ckpt-7: 20/80 images  5.00 images/s  ETA 0:12'
  assert logged[1].startswith('eval ckpt-7: 30/80 images')
  assert logged[-1] == 'eval ckpt-7: 80/80 images  2.22 images/s  elapsed 0:36'
  assert len(logged) == 3


def test_terminal_redraws_in_place_and_unknown_total():
  class Tty(io.StringIO):
    def isatty(self):
      return True
  clock = Clock()
  stream = Tty()
  bar = progress.Progress(None, stream=stream, clock=clock)
  clock.now += 2
  bar.update(4)
  bar.finish()
  assert stream.getvalue().count('\r') == 2 and stream.getvalue().endswith('\n')
  assert '4 images  2.00 images/s' in stream.getvalue() and 'ETA' not in stream.getvalue()
  silent = progress.Progress(3, stream=Tty(), enabled=False)
  silent.update(3)
  silent.finish()
  assert silent.stream.getvalue() == '' and silent.done == 3
