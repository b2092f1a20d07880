"""Every fix densessl needs for VISSL 0.1.6 / classy-vision 0.7.0 on modern PyTorch.

VISSL is unmaintained upstream. The fixes below are applied once, when ``vissl_plugins``
is imported; nothing else in the code base knows they exist. Each names the problem it
solves and has a test in ``tests/test_vissl_compat.py`` that fails without it.
"""
import logging
import os
import os.path as osp

from densessl.atomic_io import atomic_torch_save
from densessl.run_manifest import REPO_ROOT

PROJECT_CONFIG_DIR = os.environ.get('DENSESSL_VISSL_CONFIGS', osp.join(REPO_ROOT, 'configs'))
_applied = False


# Problem 1: "Apex must be available to use LARC". VISSL's task asserts that apex is
# installed whenever OPTIMIZER.use_larc is set, and classy_vision's SGD imports LARC from
# apex. apex cannot be installed here (PyPI's `apex` is an unrelated package). Fix: route
# `name: sgd` + `use_larc: True` (the seeds' configs) to our own `sgd_larc` optimizer,
# which implements LARC in plain PyTorch (vissl_plugins/optimizers/larc.py).
def _fix_larc_without_apex():
    from classy_vision.optim import build_optimizer
    from vissl.config import AttrDict
    from vissl.trainer.train_task import SelfSupervisionTask

    original = SelfSupervisionTask._build_optimizer

    def _build_optimizer(self):
        optimizer_config = self.config['OPTIMIZER']
        if optimizer_config.use_larc and optimizer_config.name in ('sgd', 'sgd_larc'):
            return build_optimizer(AttrDict({**optimizer_config, 'name': 'sgd_larc'}))
        return original(self)

    SelfSupervisionTask._build_optimizer = _build_optimizer


# Problem 2: checkpoints are not written atomically. classy_vision's save_checkpoint (used
# by VISSL's checkpoint writer) streams torch.save straight into the final file name, so a
# run killed while saving leaves a truncated `model_phaseN.torch` that auto-resume then
# picks up and fails on. Fix: write to a temp file in the same folder, then rename.
def _fix_atomic_checkpoints():
    import vissl.utils.checkpoint as vissl_checkpoint

    def save_checkpoint(checkpoint_folder, state, checkpoint_file='checkpoint.torch'):
        path = osp.join(checkpoint_folder, checkpoint_file)
        atomic_torch_save(state, path)
        return path

    vissl_checkpoint.save_checkpoint = save_checkpoint


# Problem 3: VISSL finds experiment YAMLs only in `configs/` of the *working directory* (or
# in the `configs` package its wheel installs). Fix: add the project's configs folder to
# Hydra's search path, so `config=pretrain/...` works from any directory.
def _fix_config_search_path():
    from hydra.core.config_search_path import ConfigSearchPath
    from hydra.core.plugins import Plugins
    from hydra.plugins.search_path_plugin import SearchPathPlugin

    class DenseSSLConfigSearchPath(SearchPathPlugin):
        def manipulate_search_path(self, search_path: ConfigSearchPath) -> None:
            search_path.prepend(provider='densessl', path=f'file://{PROJECT_CONFIG_DIR}')

    Plugins.instance().register(DenseSSLConfigSearchPath)


# Problem 4: VISSL builds every data set as GenericSSLDataset; there is no registry of
# data set classes (the ViCE fork hard-wired a DATASET_TYPE switch into VISSL itself).
# Fix: the train task builds its data sets through our registry
# (vissl_plugins/data/dataset_types.py); `DATA.<split>.DATASET_TYPE: generic` (the
# default) still gives VISSL's own class.
def _add_dataset_type_registry():
    import vissl.trainer.train_task as train_task

    from vissl_plugins.data.dataset_types import build_dataset_by_type

    train_task.build_dataset = build_dataset_by_type


# Problem 5: VISSL's SelfSupervisionTask.set_epoch informs the sampler and the data sources of
# a new epoch, never the data set itself. Data sets that draw their own random views (ViCE's
# dense_ssl_dataset seeds every sample from (seed, epoch, index)) would then repeat the same
# views every epoch. Fix: after VISSL's set_epoch, call the data set's own set_epoch if it has
# one (before the epoch's data iterator and its workers are created).
def _tell_datasets_the_epoch():
    from vissl.trainer.train_task import SelfSupervisionTask

    if getattr(SelfSupervisionTask.set_epoch, '_densessl_dataset_epoch', False):
        return
    vissl_set_epoch = SelfSupervisionTask.set_epoch

    def set_epoch(self, phase_type, epoch, start_iter, train_phase_idx):
        vissl_set_epoch(self, phase_type, epoch, start_iter, train_phase_idx)
        dataset = self.datasets[phase_type]
        if hasattr(dataset, 'set_epoch'):
            dataset.set_epoch(epoch)

    set_epoch._densessl_dataset_epoch = True
    SelfSupervisionTask.set_epoch = set_epoch


def apply():
    global _applied
    if _applied:
        return
    _fix_larc_without_apex()
    _fix_atomic_checkpoints()
    _fix_config_search_path()
    _add_dataset_type_registry()
    _tell_datasets_the_epoch()
    logging.getLogger(__name__).debug('densessl VISSL fixes applied')
    _applied = True
