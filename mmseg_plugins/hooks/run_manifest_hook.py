"""Hook ``RunManifestHook``: ``<work_dir>/manifest.json`` for every run (rank 0 only).

Written in ``before_run`` through ``densessl.run_manifest.write_manifest``: the command
line, the full config as a plain dict, the run's seed, the git commit, package versions
and the machine. The kind is ``mmseg-train`` for ``runner.train()`` (file
``manifest.json``) and ``mmseg-test`` for ``runner.test()`` (file ``manifest_test.json``,
so that testing in a training work dir keeps the training manifest).
"""
from mmengine.dist import is_main_process
from mmengine.hooks import Hook
from mmengine.runner import BaseLoop
from mmseg.registry import HOOKS

from densessl.run_manifest import write_manifest

FILENAMES = {'mmseg-train': 'manifest.json', 'mmseg-test': 'manifest_test.json',
             'mmseg-val': 'manifest_val.json'}


def run_kind(runner):
    """'mmseg-train', 'mmseg-test' or 'mmseg-val': the loop the runner has built (each of
    runner.train() / test() / val() builds its loop just before calling before_run)."""
    if isinstance(runner._train_loop, BaseLoop):
        return 'mmseg-train'
    if isinstance(runner._test_loop, BaseLoop):
        return 'mmseg-test'
    return 'mmseg-val'


@HOOKS.register_module()
class RunManifestHook(Hook):
    priority = 'VERY_HIGH'

    def __init__(self, kind=None, filename=None):
        self.kind = kind
        self.filename = filename

    def before_run(self, runner):
        if not is_main_process():
            return
        kind = self.kind or run_kind(runner)
        randomness = runner.cfg.get('randomness') or {}
        seeds = {'seed': runner.seed,
                 'deterministic': bool(randomness.get('deterministic', False)),
                 'diff_rank_seed': bool(randomness.get('diff_rank_seed', False))}
        self.path = write_manifest(runner.work_dir, runner.cfg.to_dict(), seeds=seeds,
                                   kind=kind, filename=self.filename or FILENAMES[kind])
