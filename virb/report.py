"""Results of the benchmark: one ``results.json`` per run, and the summary over all runs.

Per run, ``<out>/<experiment>/<task key>-<config name>/results.json``::

    {"experiment", "task", "task_key", "config_name", "config": {...}, "digest",
     "metric": {"name": "mIoU", "higher_is_better": true},
     "history": [{"epoch", "lr", "train_loss", "train_metric", "test_loss", "test_metric",
                  "seconds"}, ...],
     "best": {...the best epoch's entry...}, "last": {...the last epoch's...},
     "status": "running" | "finished", ...}

(the original kept only the last epoch's four numbers, overwritten every epoch). Failed
(encoder, task) jobs leave ``<out>/<experiment>/FAILED-<task key>.json`` (the error).

``write_summary(out)`` reads them all and writes ``summary.json``, ``summary.md`` (encoders
x tasks: each cell the best config's best test value and its name; lower-is-better metrics
marked in every table) and ``summary.html`` (the tables and two plots, ``plot_vs_reference.
png``: each task's score against a reference task's, as the original's correlation figure,
and ``plot_heatmap.png``: encoders x tasks, each column scaled so that better is brighter).
"""
import base64
import glob
import html
import json
import os.path as osp

from densessl.atomic_io import atomic_write_json, atomic_write_text

RESULTS = 'results.json'
FAILED_PREFIX = 'FAILED-'


def _best(history, higher_is_better):
    scored = [h for h in history if h.get('test_metric') is not None]
    if not scored:
        return None
    pick = max if higher_is_better else min
    return pick(scored, key=lambda h: h['test_metric'])


def results_record(identity, metric, history, status):
    """The results.json dict of a run (module docstring)."""
    return {**identity,
            'metric': {'name': metric.name, 'higher_is_better': metric.higher_is_better},
            'history': list(history), 'best': _best(history, metric.higher_is_better),
            'last': history[-1] if history else None, 'status': status}


def write_results(run_dir, record):
    return atomic_write_json(record, osp.join(run_dir, RESULTS))


def read_results(run_dir):
    path = osp.join(run_dir, RESULTS)
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def direction(higher_is_better):
    return 'higher is better' if higher_is_better else 'LOWER is better'


def collect(out):
    """All finished runs and failures under ``out`` -> the summary dict (``summary.json``)."""
    runs = []
    for path in sorted(glob.glob(osp.join(out, '*', '*', RESULTS))):
        record = read_results(osp.dirname(path))
        if record and record.get('status') == 'finished' and record.get('best'):
            runs.append(record)
    failures = []
    for path in sorted(glob.glob(osp.join(out, '*', FAILED_PREFIX + '*.json'))):
        with open(path) as f:
            failures.append(json.load(f))
    tasks, encoders, cells = {}, [], {}
    for r in runs:
        tasks.setdefault(r['task_key'], {'task': r['task'], **r['metric']})
        if r['experiment'] not in encoders:
            encoders.append(r['experiment'])
        higher = r['metric']['higher_is_better']
        cell = {'value': r['best']['test_metric'], 'config': r['config_name'],
                'epoch': r['best']['epoch'], 'last': r['last']['test_metric']}
        current = cells.setdefault(r['experiment'], {}).get(r['task_key'])
        if current is None or (cell['value'] > current['value'] if higher
                               else cell['value'] < current['value']):
            cells[r['experiment']][r['task_key']] = cell
    for f in failures:
        if f['experiment'] not in encoders:
            encoders.append(f['experiment'])
        tasks.setdefault(f['task_key'], {'task': f.get('task'), 'name': '?',
                                         'higher_is_better': True})
    runs_table = [{'experiment': r['experiment'], 'task_key': r['task_key'],
                   'config': r['config_name'], 'metric': r['metric']['name'],
                   'higher_is_better': r['metric']['higher_is_better'],
                   'best': r['best']['test_metric'], 'best_epoch': r['best']['epoch'],
                   'last': r['last']['test_metric'], 'epochs': len(r['history']),
                   'train_seconds': r.get('train_seconds')} for r in runs]
    return {'tasks': tasks, 'encoders': encoders, 'cells': cells, 'runs': runs_table,
            'failures': failures}


def _column_title(key, info):
    return f"{key} ({info['name']}, {direction(info['higher_is_better'])})"


def _failed(summary, encoder, task):
    return any(f['experiment'] == encoder and f['task_key'] == task
               for f in summary['failures'])


def _cell_text(summary, encoder, task):
    cell = summary['cells'].get(encoder, {}).get(task)
    if cell is not None:
        return f"{cell['value']:.2f} ({cell['config']})"
    return 'FAILED' if _failed(summary, encoder, task) else '-'


def summary_rows(summary):
    """(header, rows) of the encoders x tasks table."""
    header = ['encoder'] + [_column_title(k, v) for k, v in summary['tasks'].items()]
    rows = [[e] + [_cell_text(summary, e, t) for t in summary['tasks']]
            for e in summary['encoders']]
    return header, rows


def _markdown_table(header, rows):
    lines = ['| ' + ' | '.join(header) + ' |', '|' + '---|' * len(header)]
    return lines + ['| ' + ' | '.join(str(c) for c in row) + ' |' for row in rows]


def runs_rows(summary):
    header = ['encoder', 'task', 'config', 'metric', 'best', 'best epoch', 'last', 'epochs']
    rows = [[r['experiment'], r['task_key'], r['config'],
             f"{r['metric']} ({direction(r['higher_is_better'])})", f"{r['best']:.2f}",
             r['best_epoch'], f"{r['last']:.2f}", r['epochs']] for r in summary['runs']]
    return header, rows


def summary_markdown(summary):
    header, rows = summary_rows(summary)
    lines = ['# ViRB summary', '',
             'Each cell: the best test value over epochs of the best training config (named).',
             '', *_markdown_table(header, rows), '', '## Every run', '',
             *_markdown_table(*runs_rows(summary))]
    if summary['failures']:
        lines += ['', '## Failed jobs', '']
        lines += [f"- {f['experiment']} / {f['task_key']}: {f['error']}"
                  for f in summary['failures']]
    return '\n'.join(lines) + '\n'


def _scores(summary):
    """{task: {encoder: value}} of the cells."""
    return {t: {e: summary['cells'][e][t]['value'] for e in summary['cells']
                if t in summary['cells'][e]} for t in summary['tasks']}


def plot_vs_reference(summary, reference, path):
    """Each other task's score (y) against ``reference``'s (x), one point per encoder."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    scores = _scores(summary)
    others = [t for t in summary['tasks'] if t != reference] or [reference]
    fig, axes = plt.subplots(1, len(others), figsize=(4 * len(others), 3.6), squeeze=False)
    ref_info = summary['tasks'].get(reference, {'name': '?', 'higher_is_better': True})
    for ax, task in zip(axes[0], others):
        info = summary['tasks'][task]
        common = [e for e in scores.get(task, {}) if e in scores.get(reference, {})]
        xs = [scores[reference][e] for e in common]
        ys = [scores[task][e] for e in common]
        ax.scatter(xs, ys)
        for e, x, y in zip(common, xs, ys):
            ax.annotate(e, (x, y), fontsize=7, xytext=(3, 3), textcoords='offset points')
        ax.set_xlabel(f"{reference} {ref_info['name']} ({direction(ref_info['higher_is_better'])})",
                      fontsize=8)
        ax.set_ylabel(f"{task} {info['name']} ({direction(info['higher_is_better'])})",
                      fontsize=8)
        ax.set_title(task, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def plot_heatmap(summary, path):
    """Encoders x tasks; each column min-max scaled so that better is brighter, the values
    written in the cells."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    import numpy as np
    tasks, encoders = list(summary['tasks']), list(summary['encoders'])
    values = np.full((len(encoders), len(tasks)), np.nan)
    for i, e in enumerate(encoders):
        for j, t in enumerate(tasks):
            cell = summary['cells'].get(e, {}).get(t)
            if cell is not None:
                values[i, j] = cell['value']
    scaled = np.full_like(values, np.nan)
    for j, t in enumerate(tasks):
        col = values[:, j]
        if np.all(np.isnan(col)):
            continue
        lo, hi = np.nanmin(col), np.nanmax(col)
        s = (col - lo) / (hi - lo) if hi > lo else np.full_like(col, 0.5)
        scaled[:, j] = s if summary['tasks'][t]['higher_is_better'] else 1 - s
    fig, ax = plt.subplots(figsize=(1.8 + 1.6 * len(tasks), 1.0 + 0.5 * len(encoders)))
    ax.imshow(np.nan_to_num(scaled, nan=0.0), cmap='viridis', vmin=0, vmax=1, aspect='auto')
    ax.set_xticks(range(len(tasks)))
    ax.set_xticklabels([f"{t}\n{summary['tasks'][t]['name']}"
                        + ('' if summary['tasks'][t]['higher_is_better'] else ' (lower better)')
                        for t in tasks], fontsize=7)
    ax.set_yticks(range(len(encoders)))
    ax.set_yticklabels(encoders, fontsize=7)
    for i in range(len(encoders)):
        for j in range(len(tasks)):
            text = 'n/a' if np.isnan(values[i, j]) else f'{values[i, j]:.1f}'
            ax.text(j, i, text, ha='center', va='center', fontsize=7,
                    color='white' if np.nan_to_num(scaled[i, j]) < 0.6 else 'black')
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def _html_table(header, rows):
    head = ''.join(f'<th>{html.escape(str(h))}</th>' for h in header)
    body = ''.join('<tr>' + ''.join(f'<td>{html.escape(str(c))}</td>' for c in row) + '</tr>'
                   for row in rows)
    return f'<table><tr>{head}</tr>{body}</table>'


def _embedded_png(path):
    with open(path, 'rb') as f:
        data = base64.b64encode(f.read()).decode()
    name = html.escape(osp.basename(path))
    return (f'<p><a href="{name}">{name}</a></p>'
            f'<img alt="{name}" src="data:image/png;base64,{data}">')


def summary_html(summary, plots, reference):
    failures = ''.join(f"<li>{html.escape(f['experiment'])} / {html.escape(f['task_key'])}: "
                       f"{html.escape(f['error'])}</li>" for f in summary['failures'])
    return ('<!doctype html><html><head><meta charset="utf-8"><title>ViRB summary</title>'
            '<style>body{font-family:sans-serif}table{border-collapse:collapse}'
            'td,th{border:1px solid #999;padding:3px 6px}</style></head><body>'
            '<h1>ViRB summary</h1><p>Each cell: the best test value over epochs of the best '
            'training config (named). Lower-is-better metrics are marked.</p>'
            + _html_table(*summary_rows(summary))
            + f'<h2>Each task against {html.escape(reference)}</h2>' + _embedded_png(plots[0])
            + '<h2>Encoders x tasks</h2>' + _embedded_png(plots[1])
            + '<h2>Every run</h2>' + _html_table(*runs_rows(summary))
            + (f'<h2>Failed jobs</h2><ul>{failures}</ul>' if failures else '')
            + '</body></html>\n')


def write_summary(out, reference_task=None):
    """Collect ``out`` and write summary.{json,md,html} and the two plots; returns the
    summary dict (with ``paths``)."""
    summary = collect(out)
    tasks = list(summary['tasks'])
    reference = reference_task if reference_task in tasks else (tasks[0] if tasks else '-')
    summary['reference_task'] = reference
    plots = (plot_vs_reference(summary, reference, osp.join(out, 'plot_vs_reference.png')),
             plot_heatmap(summary, osp.join(out, 'plot_heatmap.png')))
    paths = {'json': osp.join(out, 'summary.json'), 'md': osp.join(out, 'summary.md'),
             'html': osp.join(out, 'summary.html'), 'plots': list(plots)}
    atomic_write_json(summary, paths['json'])
    atomic_write_text(summary_markdown(summary), paths['md'])
    atomic_write_text(summary_html(summary, plots, reference), paths['html'])
    summary['paths'] = paths
    return summary
