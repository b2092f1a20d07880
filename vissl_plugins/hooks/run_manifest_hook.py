"""Hook that writes ``manifest.json`` into the checkpoint folder when training starts."""
import json

from classy_vision.hooks.classy_hook import ClassyHook
from vissl.utils.env import get_machine_local_and_dist_rank

from densessl.run_manifest import write_manifest


class RunManifestHook(ClassyHook):
    """Rank 0 writes the full config, seed, versions and git commit next to the checkpoints."""
    on_phase_start = ClassyHook._noop
    on_forward = ClassyHook._noop
    on_loss_and_meter = ClassyHook._noop
    on_backward = ClassyHook._noop
    on_update = ClassyHook._noop
    on_step = ClassyHook._noop
    on_phase_end = ClassyHook._noop
    on_end = ClassyHook._noop

    def on_start(self, task) -> None:
        if get_machine_local_and_dist_rank()[1] != 0:
            return
        cfg = task.config
        plain = json.loads(json.dumps(cfg, default=str))
        write_manifest(cfg.CHECKPOINT.DIR, plain, seeds={'SEED_VALUE': cfg.SEED_VALUE},
                       kind='vissl-pretrain')
