"""Hook writing ``<work_dir>/manifest.json`` (config, seed, versions, git commit, argv)."""
from mmengine.dist import is_main_process
from mmengine.hooks import Hook
from mmseg.registry import HOOKS

from densessl.run_manifest import write_manifest


@HOOKS.register_module()
class RunManifestHook(Hook):
    priority = 'VERY_HIGH'

    def before_run(self, runner):
        if not is_main_process():
            return
        kind = 'mmseg-test' if runner.cfg.get('load_from') and runner._train_loop is None \
            else 'mmseg-train'
        write_manifest(runner.work_dir, runner.cfg.to_dict(), seeds={'seed': runner.seed},
                       kind=kind)
