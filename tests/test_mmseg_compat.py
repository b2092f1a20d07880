"""mmseg_plugins.compat: each problem reproduced without its fix, and each fix checked.

Fix 1: mmcv.ops stand-in (mmcv-lite). Fix 2: mmengine checkpoints under weights-only
torch.load. Fix 3: CPU multi-process runs (set_device no-op, adapt_config_for_device).
Plus the --cfg-options key check of tools/train.py / tools/test.py.
"""
import importlib.util
import os.path as osp
import pickle
import subprocess
import sys
from unittest import mock

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import mmseg_plugins  # noqa: F401  (applies the fixes)
from mmseg_plugins import compat
from mmseg_plugins.config_options import UnknownConfigKeyError, check_cfg_options

FULL_MMCV = compat.real_mmcv_ops_available()
needs_mmcv_lite = pytest.mark.skipif(FULL_MMCV, reason='full mmcv installed: no stand-in')
cpu_only = pytest.mark.skipif(torch.cuda.is_available(), reason='CPU-only behaviour')


# ----------------------------------------------------------------------------- fix 1
@needs_mmcv_lite
def test_problem_mmseg_models_does_not_import_without_the_stand_in():
    proc = subprocess.run([sys.executable, '-c', 'import mmseg.models'],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0 and "No module named 'mmcv._ext'" in proc.stderr


@needs_mmcv_lite
def test_fix_mmseg_models_imports_with_the_stand_in():
    import mmcv.ops
    import mmseg.models  # noqa: F401  (raises "No module named 'mmcv._ext'" without fix 1)
    from mmseg.models.decode_heads import PointHead  # noqa: F401  (uses point_sample)
    from mmseg.models.losses import FocalLoss  # noqa: F401  (uses sigmoid_focal_loss)
    assert mmcv.ops.__densessl_stand_in__ and mmcv.ops.point_sample is compat.point_sample


def _mmcv_point_sample_source():
    """mmcv's own pure-PyTorch point_sample, loaded from its file (the package needs _ext)."""
    import mmcv
    path = osp.join(osp.dirname(mmcv.__file__), 'ops', 'point_sample.py')
    spec = importlib.util.spec_from_file_location('mmcv_point_sample_file', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _bilinear(feat, x, y):
    """Bilinear read of feat (C, H, W) at pixel coordinates (x, y), zeros outside."""
    c, h, w = feat.shape
    value = torch.zeros(c, dtype=torch.float64)
    x0, y0 = int(np.floor(x)), int(np.floor(y))
    for yi in (y0, y0 + 1):
        for xi in (x0, x0 + 1):
            if 0 <= yi < h and 0 <= xi < w:
                value += (1 - abs(x - xi)) * (1 - abs(y - yi)) * feat[:, yi, xi].double()
    return value


@pytest.mark.parametrize('align_corners', [False, True])
def test_point_sample_matches_bilinear_formula_and_mmcv(align_corners):
    gen = torch.Generator().manual_seed(0)
    feat = torch.randn(2, 3, 5, 7, generator=gen)
    points = torch.rand(2, 6, 2, generator=gen) * 1.2 - 0.1  # some outside [0, 1]
    out = compat.point_sample(feat, points, align_corners=align_corners)
    assert out.shape == (2, 3, 6)
    for n in range(2):
        for p in range(6):
            px, py = points[n, p].double().tolist()
            if align_corners:  # [0, 1] spans the centres of the corner pixels
                x, y = px * (7 - 1), py * (5 - 1)
            else:  # [0, 1] spans the outer edges; pixel centres at i + 0.5
                x, y = px * 7 - 0.5, py * 5 - 0.5
            torch.testing.assert_close(out[n, :, p].double(), _bilinear(feat[n], x, y),
                                       rtol=1e-5, atol=1e-5)
    grid_points = points.view(2, 2, 3, 2)  # (N, Hp, Wp, 2) form
    grid_out = compat.point_sample(feat, grid_points, align_corners=align_corners)
    torch.testing.assert_close(grid_out, out.view(2, 3, 2, 3))
    mmcv_ps = _mmcv_point_sample_source().point_sample
    torch.testing.assert_close(out, mmcv_ps(feat, points, align_corners=align_corners))


def _focal_reference(pred, target, gamma, alpha, weight=None):
    """mmcv's kernel written out element by element; (N, C) float64."""
    n, c = pred.shape
    loss = torch.zeros(n, c, dtype=torch.float64)
    for i in range(n):
        for j in range(c):
            p = torch.sigmoid(pred[i, j].double())
            if target[i] == j:
                loss[i, j] = -alpha * (1 - p) ** gamma * torch.log(p)
            else:
                loss[i, j] = -(1 - alpha) * p ** gamma * torch.log(1 - p)
            if weight is not None and target[i] < c:
                loss[i, j] *= weight[target[i]]
    return loss


def test_sigmoid_focal_loss_matches_definition():
    gen = torch.Generator().manual_seed(1)
    pred = torch.randn(6, 4, generator=gen) * 3
    target = torch.tensor([0, 3, 1, 4, 2, 0])  # 4 = background: negative for every class
    weight = torch.tensor([0.5, 1.0, 2.0, 3.0])
    for gamma, alpha in ((2.0, 0.25), (0.0, 0.5), (1.5, 0.75)):
        ref = _focal_reference(pred, target, gamma, alpha)
        none = compat.sigmoid_focal_loss(pred, target, gamma, alpha, reduction='none')
        torch.testing.assert_close(none.double(), ref, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(
            compat.sigmoid_focal_loss(pred, target, gamma, alpha, reduction='sum').double(),
            ref.sum(), rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(  # mmcv's 'mean': sum / number of samples
            compat.sigmoid_focal_loss(pred, target, gamma, alpha).double(), ref.sum() / 6,
            rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(  # weight is indexed by each sample's target class
        compat.sigmoid_focal_loss(pred, target, 2.0, 0.25, weight, 'none').double(),
        _focal_reference(pred, target, 2.0, 0.25, weight), rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match='reduction'):
        compat.sigmoid_focal_loss(pred, target, reduction='avg')


def test_sigmoid_focal_loss_gradient_matches_autograd_of_the_formula():
    pred = torch.randn(5, 3, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    target = torch.tensor([0, 1, 2, 3, 1])
    a = pred.clone().requires_grad_(True)
    compat.sigmoid_focal_loss(a, target).backward()
    b = pred.clone().requires_grad_(True)
    p = b.sigmoid()
    one_hot = F.one_hot(target, 4)[:, :3].double()
    ref = (-0.25 * one_hot * (1 - p) ** 2 * torch.log(p)
           - 0.75 * (1 - one_hot) * p ** 2 * torch.log(1 - p)).sum() / 5
    ref.backward()
    torch.testing.assert_close(a.grad, b.grad)


@needs_mmcv_lite
@pytest.mark.parametrize('name', compat.COMPILED_ONLY_OPS)
def test_compiled_only_ops_fail_clearly_on_use(name):
    import mmcv.ops
    op = getattr(mmcv.ops, name)  # importing the name works (mmseg does it at import time)
    with pytest.raises(compat.CompiledOpUnavailableError,
                       match=rf'mmcv\.ops\.{name} needs the compiled ops of full mmcv.*'
                             r'pip install mmcv==2\.1\.0'):
        op(16)


# ----------------------------------------------------------------------------- fix 2
class _ToyModel:
    """A tiny mmengine model (built lazily: mmengine's BaseModel)."""

    @staticmethod
    def build():
        from mmengine.model import BaseModel

        class Toy(BaseModel):
            def __init__(self):
                super().__init__()
                self.linear = torch.nn.Linear(2, 1)

            def forward(self, inputs, labels=None, mode='loss'):
                out = self.linear(inputs).squeeze(1)
                if mode == 'loss':
                    return {'loss': ((out - labels) ** 2).mean()}
                return out
        return Toy()


def _real_mmengine_checkpoint(work_dir):
    """Train a toy model 2 iterations with mmengine's Runner; returns iter_2.pth."""
    from mmengine.runner import Runner
    data = [dict(inputs=torch.tensor([float(i), 1.0]), labels=torch.tensor(float(i)))
            for i in range(4)]
    runner = Runner(
        model=_ToyModel.build(), work_dir=str(work_dir), experiment_name=f'toy_{id(work_dir)}',
        train_dataloader=dict(dataset=data, sampler=dict(type='InfiniteSampler'),
                              batch_size=2, collate_fn=dict(type='default_collate')),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.01)),
        train_cfg=dict(by_epoch=False, max_iters=2),
        default_hooks=dict(checkpoint=dict(type='CheckpointHook', interval=2, by_epoch=False),
                           logger=dict(type='LoggerHook', interval=1)),
        randomness=dict(seed=0), default_scope='mmengine')
    runner.train()
    return osp.join(str(work_dir), 'iter_2.pth')


@pytest.fixture(scope='module')
def mmengine_checkpoint(tmp_path_factory):
    return _real_mmengine_checkpoint(tmp_path_factory.mktemp('toy_run'))


@pytest.fixture
def without_fix_2():
    """Torch's allowlist as it is without compat's additions (restored afterwards)."""
    saved = torch.serialization.get_safe_globals()
    torch.serialization.clear_safe_globals()
    yield
    torch.serialization.clear_safe_globals()
    torch.serialization.add_safe_globals(saved)


def test_problem_mmengine_checkpoint_fails_weights_only_load(mmengine_checkpoint,
                                                             without_fix_2):
    unsafe = torch.serialization.get_unsafe_globals_in_checkpoint(mmengine_checkpoint)
    assert 'mmengine.logging.history_buffer.HistoryBuffer' in unsafe
    with pytest.raises(pickle.UnpicklingError, match='Weights only load failed'):
        torch.load(mmengine_checkpoint)


def test_fix_mmengine_checkpoint_loads_weights_only(mmengine_checkpoint):
    from mmengine.runner.checkpoint import _load_checkpoint
    for checkpoint in (torch.load(mmengine_checkpoint),  # default weights_only=True
                       _load_checkpoint(mmengine_checkpoint, map_location='cpu')):
        assert checkpoint['meta']['iter'] == 2
        loss = checkpoint['message_hub']['log_scalars']['train/loss']
        assert np.isfinite(loss.mean()) and loss.current() == loss.data[0][-1]
        assert set(checkpoint['state_dict']) == {'linear.weight', 'linear.bias'}


class _Exploit:
    def __init__(self, target, name):
        self.target, self.name = target, name

    def __reduce__(self):
        return getattr, (self.target, self.name)


def test_fix_allows_only_history_buffer_methods_through_getattr(tmp_path):
    from mmengine.logging.history_buffer import HistoryBuffer
    ok, bad, private = (str(tmp_path / f'{n}.pth') for n in ('ok', 'bad', 'private'))
    torch.save({'m': _Exploit(HistoryBuffer, 'mean')}, ok)
    torch.save({'m': _Exploit(np.ndarray, 'tofile')}, bad)
    torch.save({'m': _Exploit(HistoryBuffer, '__init__')}, private)
    assert torch.load(ok)['m'] is HistoryBuffer.mean
    for path in (bad, private):
        with pytest.raises(pickle.UnpicklingError, match='refused getattr'):
            torch.load(path)


# ----------------------------------------------------------------------------- fix 3
@cpu_only
def test_problem_and_fix_cuda_set_device_on_cpu():
    assert torch.cuda.set_device is compat._cpu_safe_set_device
    with pytest.raises((RuntimeError, AssertionError)):
        compat._cpu_safe_set_device.original(0)  # what mmengine's init_dist would hit
    torch.cuda.set_device(0)  # the fix: a no-op without CUDA


def _sync_bn_config():
    from mmengine.config import Config
    return Config(dict(
        model=dict(backbone=dict(norm_cfg=dict(type='SyncBN', requires_grad=True)),
                   decode_head=dict(norm_cfg=dict(type='SyncBN')),
                   auxiliary_head=[dict(norm_cfg=dict(type='BN')),
                                   dict(norm_cfg=dict(type='MMSyncBN'))]),
        env_cfg=dict(dist_cfg=dict(backend='nccl'))))


@cpu_only
def test_adapt_config_for_cpu():
    cfg = _sync_bn_config()
    with mock.patch.object(compat, '_note') as note:
        assert compat.adapt_config_for_device(cfg) is cfg
    assert cfg.model.backbone.norm_cfg.type == 'BN' and cfg.model.backbone.norm_cfg.requires_grad
    assert cfg.model.decode_head.norm_cfg.type == 'BN'
    assert [h.norm_cfg.type for h in cfg.model.auxiliary_head] == ['BN', 'BN']
    assert cfg.env_cfg.dist_cfg.backend == 'gloo'
    assert cfg.model_wrapper_cfg == dict(type='MMDistributedDataParallel', device_ids=None,
                                         broadcast_buffers=False)
    (message,), _ = note.call_args
    assert 'model.backbone.norm_cfg' in message and 'model.auxiliary_head.1.norm_cfg' in message
    assert 'model.auxiliary_head.0' not in message


@cpu_only
def test_adapt_config_keeps_a_configured_wrapper_and_fills_missing_env():
    from mmengine.config import Config
    wrapper = dict(type='MMDistributedDataParallel', find_unused_parameters=True)
    cfg = Config(dict(model=dict(type='X'), model_wrapper_cfg=wrapper))
    with mock.patch.object(compat, '_note') as note:
        compat.adapt_config_for_device(cfg)
    assert cfg.model_wrapper_cfg == wrapper and cfg.env_cfg.dist_cfg.backend == 'gloo'
    note.assert_not_called()


@cpu_only
def test_cpu_ddp_wrapper_from_adapted_config_trains(tmp_path):
    """One gloo process: the adapted wrapper config wraps and trains a CPU model; DDP's
    default device_ids=[rank] (mmengine without a wrapper config) is refused."""
    import torch.distributed as dist
    from mmengine.registry import MODEL_WRAPPERS
    cfg = compat.adapt_config_for_device(_sync_bn_config())
    dist.init_process_group('gloo', init_method=f'file://{tmp_path / "store"}', rank=0,
                            world_size=1)
    try:
        model = _ToyModel.build()
        with pytest.raises((ValueError, RuntimeError, AssertionError)):
            MODEL_WRAPPERS.build(dict(type='MMDistributedDataParallel', module=model,
                                      device_ids=[0]))
        ddp = MODEL_WRAPPERS.build(dict(cfg.model_wrapper_cfg, module=_ToyModel.build()))
        before = ddp.module.linear.weight.detach().clone()
        loss = ddp(torch.ones(3, 2), labels=torch.ones(3))['loss']
        loss.backward()
        torch.optim.SGD(ddp.parameters(), lr=0.1).step()
        assert not torch.equal(before, ddp.module.linear.weight)
    finally:
        dist.destroy_process_group()


def test_fixes_are_applied_once_on_import():
    before = (sys.modules.get('mmcv.ops'), torch.cuda.set_device,
              len(torch.serialization.get_safe_globals()))
    compat.apply()
    assert before == (sys.modules.get('mmcv.ops'), torch.cuda.set_device,
                      len(torch.serialization.get_safe_globals()))


# ----------------------------------------------------------------------------- --cfg-options
def _options_config():
    from mmengine.config import Config
    return Config(dict(model=dict(backbone=dict(checkpoint=None, depth=18)),
                       param_scheduler=[dict(type='PolyLR', eta_min=1e-4)],
                       train_cfg=dict(max_iters=5)))


def test_known_cfg_options_pass():
    check_cfg_options(_options_config(), {
        'model.backbone.checkpoint': 'x.pth', 'model.backbone.depth': 50,
        'param_scheduler.0.eta_min': 0.0, 'train_cfg.max_iters': 2,
        'work_dir': '/tmp/w', 'model_wrapper_cfg': None})  # top-level Runner keys may be new


@pytest.mark.parametrize('key, pattern', [
    ('model.backbone.checkpiont', r"unknown config key 'model\.backbone\.checkpiont': "
                                  r"model\.backbone has no 'checkpiont'\. Did you mean "
                                  r"'model\.backbone\.checkpoint'\?"),
    ('model.neck.in_channels', r"model has no 'neck'"),
    ('param_scheduler.1.end', r"param_scheduler has no '1'"),
    ('train_cfg.max_iters.value', r"'train_cfg\.max_iters' is a value"),
    ('max_iter', r"the config has no 'max_iter'"),
])
def test_unknown_cfg_options_are_refused(key, pattern):
    with pytest.raises(UnknownConfigKeyError, match=pattern):
        check_cfg_options(_options_config(), {key: 1})
