#!/usr/bin/env python
"""ViRB: train heads on frozen encoders over a set of tasks and summarise encoders x tasks.

    # the original's command line (its YAML formats: configs/virb/, docs/virb.md)
    python tools/virb.py --experiment_list=configs/virb/experiment_lists/swav.yaml \\
        --virb_configs=configs/virb/virb_configs/all.yaml --data-root /data
    # one encoder without a list
    python tools/virb.py --name SWAV_800 --encoder_weights pretrained_weights/SWAV_800.pt \\
        --virb_configs=configs/virb/virb_configs/all.yaml
    # the CPU demo over the two built-in synthetic tasks, 2 worker processes
    python tools/virb.py --experiment_list=configs/virb/experiment_lists/demo_cpu.yaml \\
        --virb_configs=configs/virb/virb_configs/demo_cpu.yaml \\
        --data-root data/synthetic_scenes --workers 2 --out work_dirs/virb_demo

Writes ``OUT/<experiment>/<task>-<config>/results.json`` (per-epoch history, best, last),
``model_head.pt``, TensorBoard scalars, and ``OUT/summary.{md,json,html}`` with two plots.
Finished runs are skipped on a re-run (``--fresh`` starts them over). Bad input (a YAML key,
task, optimizer or scheduler key, a weight file) exits 2 with one message naming it; a job
that fails is listed in the summary and the others go on (exit 1 at the end).
"""
import argparse
import os
import sys

TOOLS = os.path.dirname(os.path.abspath(__file__))
REPO_ROOT = os.path.dirname(TOOLS)
# this file is tools/virb.py: keep tools/ off the path so `import virb` finds the package
sys.path[:] = [REPO_ROOT] + [p for p in sys.path
                             if os.path.abspath(p or '.') not in (TOOLS, REPO_ROOT)]

from virb.config import (BUG_COMPAT, load_experiment_list, load_virb_configs,  # noqa: E402
                         parse_encoder)
from virb.errors import VirbError  # noqa: E402
from virb.runner import print_table, run_benchmark  # noqa: E402


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--experiment_list', help='YAML {name: weight file} (the original format)')
    p.add_argument('--virb_configs', required=True, help='YAML {TaskKey: task entry}')
    p.add_argument('--name', help='one experiment\'s name (with --encoder_weights)')
    p.add_argument('--encoder_weights', help='one experiment\'s weight file (with --name)')
    p.add_argument('--arch', help='with --name: the ResNet arch (default: from the weights; '
                                  'required without weights: a random init)')
    p.add_argument('--suffix', default='', help='appended to every experiment name')
    p.add_argument('--out', default='out', help='output folder (default: out)')
    p.add_argument('--data-root', default='data',
                   help='folder holding the data sets (imagenet/, cityscapes/, ...; default '
                        'data); a synthetic scenes folder serves the synthetic tasks directly')
    p.add_argument('--workers', type=int, default=1,
                   help='CPU worker processes when no GPU is used (default 1)')
    p.add_argument('--device', default='auto',
                   help='auto (one worker per GPU, else CPU), cpu, cuda, cuda:N')
    p.add_argument('--cache-dir', help='on-disk cache of pre-encoded features (optional)')
    p.add_argument('--fresh', action='store_true', help='run finished runs again')
    p.add_argument('--bug-compat', nargs='*', default=[], choices=BUG_COMPAT,
                   help='reproduce a bug of the original (scheduler_never_steps: constant LR; '
                        'cityscapes_void_class: Cityscapes void trained as class 0, for the '
                        'Cityscapes task only)')
    p.add_argument('--reference-task', help='task key the summary plots others against '
                                            '(default: the first task)')
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--no-tensorboard', action='store_true')
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    try:
        if args.experiment_list and args.name:
            raise VirbError('give --experiment_list or --name (with --encoder_weights), not both')
        if args.experiment_list:
            encoders = load_experiment_list(args.experiment_list, args.suffix)
        elif args.name:
            value = {'weights': args.encoder_weights, 'arch': args.arch}
            encoders = [parse_encoder(args.name + args.suffix, value, f'--name {args.name}')]
        else:
            raise VirbError('give --experiment_list, or --name with --encoder_weights')
        tasks = load_virb_configs(args.virb_configs)
        summary = run_benchmark(encoders, tasks, args.out, data_root=args.data_root,
                                workers=args.workers, device=args.device,
                                cache_dir=args.cache_dir, fresh=args.fresh,
                                bug_compat=args.bug_compat,
                                reference_task=args.reference_task, seed=args.seed,
                                tensorboard=not args.no_tensorboard)
    except VirbError as e:
        print(f'error: {e}', file=sys.stderr)
        return 2
    print_table(summary)
    print(f'summary: {summary["paths"]["html"]}')
    return 1 if summary['failures'] else 0


if __name__ == '__main__':
    sys.exit(main())
