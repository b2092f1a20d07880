"""A detectron2 evaluation as the project's results files: ``results.json``, ``results.md``
and ``manifest.json`` in ``OUTPUT_DIR`` (atomic writes).

detectron2's evaluators return ``{task: {metric: value}}``; tasks are ``bbox`` / ``segm`` (COCO,
AP in percent) or ``bbox`` with AP / AP50 / AP75 (VOC).
"""
import math
import os.path as osp

from densessl.atomic_io import atomic_write_json, atomic_write_text
from densessl.run_manifest import write_manifest

MAIN_METRICS = ('AP', 'AP50', 'AP75', 'APs', 'APm', 'APl')


def per_task(results):
    """``{task: {metric: value}}``; several test sets (``{set: {task: {...}}}``, what
    ``DefaultTrainer.test`` returns for more than one) give tasks named ``set/task``."""
    def is_metrics(d):
        return isinstance(d, dict) and not any(isinstance(v, dict) for v in d.values())
    if all(is_metrics(v) for v in results.values()):
        return dict(results)
    return {f'{name}/{task}': metrics for name, tasks in results.items()
            for task, metrics in tasks.items()}


def _finite_or_none(value):
    """COCO gives NaN for an empty size range (e.g. APl without large objects): None in JSON."""
    return None if isinstance(value, float) and math.isnan(value) else value


def markdown_table(results, title):
    """One row per task with the COCO / VOC summary metrics it has."""
    tasks = per_task(results)
    metrics = [m for m in MAIN_METRICS if any(m in v for v in tasks.values())]
    lines = [f'# {title}', '', '| task | ' + ' | '.join(metrics) + ' |',
             '|---|' + '---|' * len(metrics)]
    for task, values in tasks.items():
        cells = [f'{values[m]:.2f}' if _finite_or_none(values.get(m)) is not None else '-'
                 for m in metrics]
        lines.append(f'| {task} | ' + ' | '.join(cells) + ' |')
    return '\n'.join(lines) + '\n'


def write_results(results, cfg, args):
    """Write the three files for one finished train or eval run; returns their paths."""
    out = cfg.OUTPUT_DIR
    title = (f'{", ".join(cfg.DATASETS.TEST)}: {osp.basename(args.config_file)}, '
             f'weights {cfg.MODEL.WEIGHTS or "random init"}')
    tasks = {task: {m: _finite_or_none(v) for m, v in metrics.items()}
             for task, metrics in per_task(results).items()}
    paths = [atomic_write_json({'config_file': args.config_file, 'weights': cfg.MODEL.WEIGHTS,
                                'datasets': list(cfg.DATASETS.TEST), 'results': tasks},
                               osp.join(out, 'results.json')),
             atomic_write_text(markdown_table(results, title), osp.join(out, 'results.md')),
             write_manifest(out, cfg, seeds={'detectron2': cfg.SEED},
                            kind='d2_eval' if args.eval_only else 'd2_train')]
    return paths

