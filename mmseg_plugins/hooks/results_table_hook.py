"""Hook writing every validation / test result as JSON and as a Markdown table.

``<work_dir>/metrics_val.json`` / ``metrics_test.json``: the metrics (aAcc, mIoU, mAcc, ...)
with the iteration and, for tests, the checkpoint; ``.md`` beside them for humans.
"""
import os.path as osp

from mmengine.dist import is_main_process
from mmengine.hooks import Hook
from mmseg.registry import HOOKS

from densessl.atomic_io import atomic_write_json, atomic_write_text


def markdown_table(metrics):
    names = list(metrics)
    return ('| ' + ' | '.join(names) + ' |\n|' + '---|' * len(names) + '\n| '
            + ' | '.join(f'{metrics[n]:.2f}' if isinstance(metrics[n], float) else str(metrics[n])
                         for n in names) + ' |\n')


@HOOKS.register_module()
class ResultsTableHook(Hook):
    priority = 'LOW'

    def _write(self, runner, metrics, mode):
        if not is_main_process() or not metrics:
            return
        record = {k: float(v) if hasattr(v, '__float__') else v for k, v in metrics.items()}
        record.update(iteration=runner.iter, experiment=runner.experiment_name)
        if mode == 'test':
            record['checkpoint'] = runner.cfg.get('load_from')
        atomic_write_json(record, osp.join(runner.work_dir, f'metrics_{mode}.json'))
        atomic_write_text(f'# {mode} metrics ({runner.experiment_name})\n\n'
                          + markdown_table({k: v for k, v in record.items()}),
                          osp.join(runner.work_dir, f'metrics_{mode}.md'))

    def after_val_epoch(self, runner, metrics=None):
        self._write(runner, metrics, 'val')

    def after_test_epoch(self, runner, metrics=None):
        self._write(runner, metrics, 'test')
