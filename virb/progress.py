"""Progress with an ETA that works with and without a terminal (the original's curses
screen needed a TTY and failed under nohup or a batch scheduler).

``Progress(total, label)``: ``advance(n)`` adds done units. On a TTY one live line is
redrawn (``\\r``); otherwise a plain log line is printed whenever another ``log_every``
fraction is done or ``min_interval`` seconds have passed, and at the end. The ETA is the
remaining units at the average rate so far.
"""
import sys
import time


def format_seconds(seconds):
    seconds = int(max(0, seconds))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f'{h:d}:{m:02d}:{s:02d}' if h else f'{m:d}:{s:02d}'


class Progress:
    def __init__(self, total, label='virb', stream=None, tty=None, log_every=0.1,
                 min_interval=30.0, width=30):
        self.total, self.label = max(1, total), label
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty() if tty is None else tty
        self.log_every, self.min_interval, self.width = log_every, min_interval, width
        self.done, self.start = 0, time.time()
        self._last_logged, self._last_time = -1.0, 0.0
        self.note = ''

    def eta(self):
        elapsed = time.time() - self.start
        if self.done == 0:
            return None
        return elapsed / self.done * (self.total - self.done)

    def line(self):
        frac = min(1.0, self.done / self.total)
        eta = self.eta()
        eta_text = '?' if eta is None else format_seconds(eta)
        bar = '#' * int(frac * self.width) + '-' * (self.width - int(frac * self.width))
        return (f'{self.label} [{bar}] {self.done}/{self.total} ({100 * frac:.0f}%) '
                f'elapsed {format_seconds(time.time() - self.start)} ETA {eta_text}'
                + (f' | {self.note}' if self.note else ''))

    def advance(self, n=1, note=None):
        self.done += n
        if note is not None:
            self.note = note
        self._show()

    def _show(self, final=False):
        now, frac = time.time(), self.done / self.total
        if self.tty:
            self.stream.write('\r' + self.line()[:200] + ('\n' if final else ''))
            self.stream.flush()
            return
        if (final or frac - self._last_logged >= self.log_every
                or now - self._last_time >= self.min_interval):
            self.stream.write(self.line() + '\n')
            self.stream.flush()
            self._last_logged, self._last_time = frac, now

    def wrap(self, log):
        """``log`` for lines printed while the bar runs: on a TTY the bar is cleared
        first and redrawn after the line."""
        def emit(line):
            if self.tty:
                self.stream.write('\r\033[K')
                self.stream.flush()
            log(line)
            if self.tty:
                self._show()
        return emit

    def close(self):
        if self.tty or self._last_logged < 1.0:
            self._show(final=True)
