#!/usr/bin/env python
"""VISSL's launcher with densessl's plugins registered.

Same usage as VISSL's own ``tools/run_distributed_engines.py``::

    python tools/run_distributed_engines.py config=pretrain/simclr/simclr_resnet18_synthetic_cpu \
        config.CHECKPOINT.DIR=work_dirs/simclr config.DISTRIBUTED.NUM_PROC_PER_NODE=2

``config=`` names a YAML under ``configs/config/`` of this repository (or VISSL's own).
Unknown config keys are refused before anything starts.
"""
import sys

import vissl_plugins  # noqa: F401  (registers the plugins, applies the VISSL fixes)
from vissl.utils.distributed_launcher import launch_distributed, launch_distributed_on_slurm
from vissl.utils.hydra_config import compose_hydra_configuration, convert_to_attrdict

from vissl_plugins.config_check import check_config_keys, with_plugin_defaults
from vissl_plugins.slotcon.slotcon_config import infer_slotcon_config
from vissl_plugins.vice.dense_swav_config import infer_dense_swav_config


def main(overrides):
    # VISSL: the hook generator is imported here, not at top level, for submitit
    from vissl_plugins.hook_generator import densessl_hook_generator

    cfg = with_plugin_defaults(compose_hydra_configuration(overrides))
    check_config_keys(cfg)
    args, config = convert_to_attrdict(cfg)
    infer_dense_swav_config(config)  # ViCE: loss sizes from the head and the data (like swav_loss)
    infer_slotcon_config(config)  # SlotCon: prototypes, grouping temperature, trunk channels
    if config.SLURM.USE_SLURM:
        launch_distributed_on_slurm(engine_name=args.engine_name, cfg=config)
    else:
        launch_distributed(cfg=config, node_id=args.node_id, engine_name=args.engine_name,
                           hook_generator=densessl_hook_generator)


if __name__ == '__main__':
    main(sys.argv[1:])
