"""Each VISSL fix in vissl_plugins.compat: these tests fail without the fix."""
import os.path as osp

import pytest
import torch

import vissl_plugins  # noqa: F401  (applies the fixes)
from vissl_plugins.config_check import UnknownConfigKeyError, check_config_keys
from vissl_plugins.optimizers.larc import LARC


def _compose(overrides):
    from vissl.utils.hydra_config import compose_hydra_configuration
    from vissl_plugins.config_check import with_plugin_defaults
    return with_plugin_defaults(compose_hydra_configuration(overrides))


def test_larc_config_builds_without_apex():
    """`name: sgd, use_larc: True` (the seeds' configs) used to assert that apex exists."""
    from vissl.config import AttrDict
    from vissl.trainer.train_task import SelfSupervisionTask

    class FakeTask:
        config = AttrDict({'OPTIMIZER': {
            'name': 'sgd', 'use_larc': True, 'lr': 0.1, 'momentum': 0.9, 'nesterov': False,
            'weight_decay': 1e-6,
            'larc_config': {'clip': False, 'trust_coefficient': 0.001, 'eps': 1e-8}}})

    optimizer = SelfSupervisionTask._build_optimizer(FakeTask())
    optimizer.set_param_groups([{'params': [torch.nn.Parameter(torch.ones(3))]}])
    assert isinstance(optimizer.optimizer, LARC)
    assert optimizer.optimizer.trust_coefficient == 0.001


def _reference_larc_step(params, grads, lr, momentum_buffers, wd, trust, clip, eps, momentum):
    """LARC + SGD(momentum) written out per parameter, from the paper's update rule."""
    new_params = []
    for p, g, buf_index in zip(params, grads, range(len(params))):
        p_norm, g_norm = p.norm().item(), g.norm().item()
        if p_norm > 0 and g_norm > 0:
            local = trust * p_norm / (g_norm + wd * p_norm + eps)
            scale = min(local / lr, 1.0) if clip else local
            d = (g + wd * p) * scale
        else:
            d = g.clone()
        buf = momentum_buffers[buf_index]
        buf = d.clone() if buf is None else buf * momentum + d
        momentum_buffers[buf_index] = buf
        new_params.append(p - lr * buf)
    return new_params


@pytest.mark.parametrize('clip', [False, True])
def test_larc_matches_reference_over_steps(clip):
    gen = torch.Generator().manual_seed(0)
    shapes = [(4, 3), (5,), (2, 2, 3)]
    params = [torch.nn.Parameter(torch.randn(s, generator=gen)) for s in shapes]
    params.append(torch.nn.Parameter(torch.zeros(3)))  # zero norm: plain update
    lr, wd, trust, eps, momentum = 0.5, 1e-4, 0.02, 1e-8, 0.9
    opt = LARC(torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=wd),
               trust_coefficient=trust, clip=clip, eps=eps)
    ref = [p.detach().clone() for p in params]
    buffers = [None] * len(params)
    for _ in range(3):
        grads = [torch.randn(p.shape, generator=gen) for p in params]
        for p, g in zip(params, grads):
            p.grad = g.clone()
        opt.step()
        ref = _reference_larc_step(ref, grads, lr, buffers, wd, trust, clip, eps, momentum)
        for p, r in zip(params, ref):
            torch.testing.assert_close(p.detach(), r, rtol=1e-5, atol=1e-6)
    assert all(g['weight_decay'] == wd for g in opt.param_groups)  # restored after step


def test_checkpoints_are_written_atomically(tmp_path):
    """A save that dies half-way must leave the previous checkpoint intact."""
    import vissl.utils.checkpoint as vissl_checkpoint

    vissl_checkpoint.save_checkpoint(str(tmp_path), {'iteration': 1}, 'model_phase0.torch')

    class Unpicklable:
        def __reduce__(self):
            raise RuntimeError('killed while saving')

    big = {'weights': torch.zeros(1000), 'boom': Unpicklable()}
    with pytest.raises(RuntimeError, match='killed while saving'):
        vissl_checkpoint.save_checkpoint(str(tmp_path), big, 'model_phase0.torch')
    assert torch.load(tmp_path / 'model_phase0.torch') == {'iteration': 1}
    assert sorted(p.name for p in tmp_path.iterdir()) == ['model_phase0.torch']


def test_project_configs_are_found_from_any_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cfg = _compose(['config=pretrain/simclr/simclr_resnet18_synthetic_cpu'])
    assert cfg.config.MODEL.TRUNK.NAME == 'torchvision_resnet'
    assert cfg.config.MODEL.TRUNK.TORCHVISION_RESNET.DEPTH == 18


def test_unknown_config_key_is_refused_with_a_suggestion():
    cfg = _compose(['config=pretrain/simclr/simclr_resnet18_synthetic_cpu',
                    '+config.OPTIMIZER.num_epoch=3'])
    with pytest.raises(UnknownConfigKeyError, match=r"config\.OPTIMIZER\.num_epoch'.*"
                                                    r"config\.OPTIMIZER\.num_epochs"):
        check_config_keys(cfg)


def test_known_keys_and_free_form_subtrees_pass():
    cfg = _compose(['config=pretrain/simclr/simclr_resnet18_synthetic_cpu',
                    'config.OPTIMIZER.num_epochs=3'])
    check_config_keys(cfg)  # scheduler / loss sub-trees are free-form


def test_plugin_default_keys_are_filled_in():
    cfg = _compose(['config=test/integration_test/quick_simclr_synthetic'])
    assert cfg.config.MODEL.TRUNK.TORCHVISION_RESNET.ZERO_INIT_RESIDUAL is False
    assert osp.isfile(vissl_plugins.config_check.PLUGIN_DEFAULTS)


def test_train_task_builds_registered_dataset_types():
    """VISSL always built GenericSSLDataset; DATA.TRAIN.DATASET_TYPE now picks a class."""
    import vissl.trainer.train_task as train_task
    from vissl.config import AttrDict
    from vissl_plugins.data import dataset_types

    class ToyDataset:
        def __init__(self, cfg, split, **kwargs):
            self.split = split

    dataset_types.DATASET_TYPES['toy_for_test'] = ToyDataset
    try:
        cfg = AttrDict({'DATA': {'TRAIN': {'DATASET_TYPE': 'toy_for_test'}}})
        built = train_task.build_dataset(cfg=cfg, split='TRAIN', current_train_phase_idx=0)
        assert isinstance(built, ToyDataset) and built.split == 'TRAIN'
        cfg = AttrDict({'DATA': {'TRAIN': {'DATASET_TYPE': 'no_such_type'}}})
        with pytest.raises(ValueError, match='no_such_type'):
            train_task.build_dataset(cfg=cfg, split='TRAIN')
    finally:
        del dataset_types.DATASET_TYPES['toy_for_test']


def test_new_epoch_reaches_the_data_set():
    """VISSL's set_epoch told only the sampler and data sources; ViCE's data set seeds its
    views from the epoch, so it must hear of it too."""
    from types import SimpleNamespace

    from vissl.trainer.train_task import SelfSupervisionTask

    class EpochDataset:
        epoch = None

        def set_epoch(self, epoch):
            self.epoch = epoch

    dataset = EpochDataset()
    task = SimpleNamespace(dataloaders={'train': SimpleNamespace()}, datasets={'train': dataset})
    SelfSupervisionTask.set_epoch(task, 'train', 3, 0, 3)
    assert dataset.epoch == 3
