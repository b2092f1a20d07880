"""Hook ``ResultsTableHook``: every validation / test result as JSON and Markdown.

Writes (rank 0 only, atomically) after each validation epoch and after a test:

- ``<work_dir>/metrics_val.json`` / ``metrics_test.json``: the evaluator's metrics (with
  MMSeg's ``IoUMetric``: ``aAcc``, ``mIoU``, ``mAcc``, in percent) plus ``mode``,
  ``iteration`` (the training iteration the weights come from), ``checkpoint`` (the file
  those weights are in, when known: the last saved checkpoint during training, the loaded
  one in a test) and ``experiment``;
- ``metrics_val.md`` / ``metrics_test.md``: the same as a Markdown table.
"""
import os.path as osp

from mmengine.dist import is_main_process
from mmengine.hooks import Hook
from mmseg.registry import HOOKS

from densessl.atomic_io import atomic_write_json, atomic_write_text

INFO_KEYS = ('mode', 'iteration', 'checkpoint', 'experiment')


def _plain(value):
    if hasattr(value, 'item') and getattr(value, 'size', 1) == 1:
        value = value.item()
    if isinstance(value, float):  # IoUMetric's float32 percentages: 63.98, not 63.9799995
        return round(value, 4)
    return value


def markdown_table(record):
    """A two-row Markdown table (header, values) of ``record``; floats with 2 decimals."""
    names = list(record)
    cells = [f'{record[n]:.2f}' if isinstance(record[n], float) else str(record[n])
             for n in names]
    return ('| ' + ' | '.join(names) + ' |\n|' + '---|' * len(names) + '\n| '
            + ' | '.join(cells) + ' |\n')


@HOOKS.register_module()
class ResultsTableHook(Hook):
    priority = 'LOW'

    def __init__(self, out_dir=None):
        self.out_dir = out_dir
        self._loaded_checkpoint = None
        self._loaded_iter = None

    def after_load_checkpoint(self, runner, checkpoint):
        meta = checkpoint.get('meta', {}) if isinstance(checkpoint, dict) else {}
        self._loaded_iter = meta.get('iter')
        self._loaded_checkpoint = runner.cfg.get('load_from')

    def record(self, runner, metrics, mode):
        """The dict written to metrics_<mode>.json."""
        record = {k: _plain(v) for k, v in metrics.items()}
        if mode == 'test':
            iteration, checkpoint = self._loaded_iter, self._loaded_checkpoint
        else:
            iteration = runner.iter
            last = runner.message_hub.get_info('last_ckpt')
            checkpoint = last if last and osp.basename(last) == f'iter_{iteration}.pth' else None
        record.update(mode=mode, iteration=iteration, checkpoint=checkpoint,
                      experiment=runner.experiment_name)
        return record

    def _write(self, runner, metrics, mode):
        if not is_main_process() or not metrics:
            return
        record = self.record(runner, metrics, mode)
        out_dir = self.out_dir or runner.work_dir
        atomic_write_json(record, osp.join(out_dir, f'metrics_{mode}.json'))
        metric_part = {k: v for k, v in record.items() if k not in INFO_KEYS}
        info = '\n'.join(f'- {k}: {record[k]}' for k in INFO_KEYS)
        atomic_write_text(f'# {mode} metrics\n\n{markdown_table(metric_part)}\n{info}\n',
                          osp.join(out_dir, f'metrics_{mode}.md'))

    def after_val_epoch(self, runner, metrics=None):
        self._write(runner, metrics, 'val')

    def after_test_epoch(self, runner, metrics=None):
        self._write(runner, metrics, 'test')
