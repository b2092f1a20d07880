"""The demo's ViRB sweep: the demo's encoders (and a random init) over the two built-in
synthetic tasks, then the summary table.

    from virb.demo import run_demo_sweep
    run_demo_sweep({'slotcon': 'work_dirs/demo/slotcon_resnet18_mmseg.pth', 'random': None},
                   data_root='data/synthetic_scenes', out='work_dirs/demo/virb', workers=2)

or from a shell (what ``tools/demo.sh --methods virb`` runs)::

    python -m virb.demo --encoder slotcon=work_dirs/demo/slotcon_resnet18_mmseg.pth \\
        --encoder random= --data-root data/synthetic_scenes --out work_dirs/demo/virb --workers 2

An encoder given as None (or an empty path) is a random ResNet-18 (seed 0). The sweep writes
``OUT/experiment_list.yaml`` (the original's format, for ``tools/virb.py``) and runs the task
entries of ``configs/virb/virb_configs/demo_cpu.yaml``; finished runs are skipped on a
re-run. Returns the summary dict; the table is printed and ``OUT/summary.html`` written.
"""
import argparse
import os
import os.path as osp
import sys

import yaml

from densessl.atomic_io import atomic_write_text
from virb.config import load_experiment_list, load_virb_configs
from virb.runner import print_table, run_benchmark

REPO_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
DEMO_CONFIG = osp.join(REPO_ROOT, 'configs', 'virb', 'virb_configs', 'demo_cpu.yaml')
RANDOM_ARCH = 'resnet18'


def write_experiment_list(encoders, path):
    entries = {name: ({'weights': None, 'arch': RANDOM_ARCH, 'seed': 0} if not weights
                      else {'weights': osp.abspath(weights), 'arch': RANDOM_ARCH})
               for name, weights in encoders.items()}
    atomic_write_text(yaml.safe_dump(entries, sort_keys=False), path)
    return path


def run_demo_sweep(encoders, data_root, out, workers=2, virb_configs=DEMO_CONFIG,
                   fresh=False, log=print):
    """``encoders``: {name: weight file or None (random ResNet-18)}. Returns the summary."""
    os.makedirs(out, exist_ok=True)
    list_path = write_experiment_list(encoders, osp.join(out, 'experiment_list.yaml'))
    log(f'virb demo: python tools/virb.py --experiment_list={list_path} '
        f'--virb_configs={virb_configs} --data-root {data_root} --out {out} '
        f'--workers {workers} --device cpu')
    summary = run_benchmark(load_experiment_list(list_path), load_virb_configs(virb_configs),
                            out, data_root=data_root, workers=workers, device='cpu',
                            fresh=fresh, log=log)
    print_table(summary)
    log(f'virb demo: {summary["paths"]["html"]}')
    return summary


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--encoder', action='append', default=[], metavar='NAME=PATH',
                   help='an encoder (PATH empty: random ResNet-18); repeatable')
    p.add_argument('--data-root', default='data/synthetic_scenes')
    p.add_argument('--out', default='work_dirs/demo/virb')
    p.add_argument('--workers', type=int, default=2)
    p.add_argument('--fresh', action='store_true')
    args = p.parse_args(argv)
    encoders = {}
    for item in args.encoder or ['random=']:
        name, _, path = item.partition('=')
        encoders[name] = path or None
    summary = run_demo_sweep(encoders, args.data_root, args.out, args.workers, fresh=args.fresh)
    return 1 if summary['failures'] else 0


if __name__ == '__main__':
    sys.exit(main())
