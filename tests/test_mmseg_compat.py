"""Each MMSeg/mmengine fix in mmseg_plugins.compat: these tests fail without the fix."""
import numpy as np
import pytest
import torch

import mmseg_plugins  # noqa: F401  (applies the fixes)
from mmseg_plugins import compat
from mmseg_plugins.config_options import UnknownConfigKeyError, check_cfg_options


def test_mmseg_models_import_under_mmcv_lite():
    import mmseg.models  # noqa: F401  (fails with "No module named 'mmcv._ext'" without the fix)
    from mmcv.ops import point_sample, sigmoid_focal_loss  # noqa: F401


def test_point_sample_matches_bilinear_formula():
    gen = torch.Generator().manual_seed(0)
    feat = torch.randn(2, 3, 5, 7, generator=gen)
    points = torch.rand(2, 4, 2, generator=gen)
    out = compat.point_sample(feat, points, align_corners=False)
    assert out.shape == (2, 3, 4)
    for n in range(2):
        for p in range(4):
            # [0,1] coordinates -> pixel coordinates with pixel centres at i + 0.5
            x = points[n, p, 0].item() * 7 - 0.5
            y = points[n, p, 1].item() * 5 - 0.5
            value = torch.zeros(3)
            for yi in (int(np.floor(y)), int(np.floor(y)) + 1):
                for xi in (int(np.floor(x)), int(np.floor(x)) + 1):
                    wgt = (1 - abs(x - xi)) * (1 - abs(y - yi))
                    if 0 <= yi < 5 and 0 <= xi < 7:
                        value += wgt * feat[n, :, yi, xi]
            torch.testing.assert_close(out[n, :, p], value, rtol=1e-5, atol=1e-5)


def test_sigmoid_focal_loss_matches_definition():
    gen = torch.Generator().manual_seed(1)
    pred = torch.randn(6, 4, generator=gen)
    target = torch.tensor([0, 3, 1, 4, 2, 0])  # 4 = background (no class)
    gamma, alpha = 2.0, 0.25
    total = 0.0
    for i in range(6):
        for c in range(4):
            p = torch.sigmoid(pred[i, c])
            if target[i] == c:
                total += -alpha * (1 - p) ** gamma * torch.log(p)
            else:
                total += -(1 - alpha) * p ** gamma * torch.log(1 - p)
    loss = compat.sigmoid_focal_loss(pred, target, gamma, alpha, reduction='sum')
    torch.testing.assert_close(loss, total, rtol=1e-5, atol=1e-6)


def test_compiled_only_ops_fail_clearly():
    from mmcv.ops import CrissCrossAttention
    if CrissCrossAttention.__module__ != compat.__name__:
        pytest.skip('full mmcv installed')
    with pytest.raises(RuntimeError, match='full mmcv'):
        CrissCrossAttention(16)


def _mmengine_like_checkpoint(path):
    from mmengine.logging.history_buffer import HistoryBuffer
    buffer = HistoryBuffer()
    buffer.update(np.float64(0.5))
    torch.save({'state_dict': {'w': torch.ones(2)},
                'message_hub': {'log_scalars': {'loss': buffer}},
                'meta': {'seed': np.int64(0), 'dtype': np.dtype('float32'),
                         'arr': np.arange(3)}}, path)


def test_mmengine_checkpoints_load_weights_only(tmp_path):
    from mmengine.runner.checkpoint import CheckpointLoader
    path = str(tmp_path / 'iter_1.pth')
    _mmengine_like_checkpoint(path)
    with pytest.raises(Exception, match='Weights only load failed'):
        torch.load(path)  # the allowance is scoped to mmengine's loader, not global
    checkpoint = CheckpointLoader.load_checkpoint(path, map_location='cpu')
    assert checkpoint['meta']['seed'] == 0
    assert checkpoint['message_hub']['log_scalars']['loss'].current() == 0.5


@pytest.mark.skipif(torch.cuda.is_available(), reason='CPU-only behaviour')
def test_cuda_set_device_is_a_no_op_without_gpu():
    torch.cuda.set_device(0)  # mmengine's init_dist calls this; raises on CPU without the fix


def test_adapt_config_for_cpu():
    from mmengine.config import Config
    cfg = Config(dict(model=dict(backbone=dict(norm_cfg=dict(type='SyncBN')),
                                 decode_head=[dict(norm_cfg=dict(type='SyncBN'))]),
                      env_cfg=dict(dist_cfg=dict(backend='nccl'))))
    if torch.cuda.is_available():
        pytest.skip('CPU-only behaviour')
    compat.adapt_config_for_device(cfg)
    assert cfg.model.backbone.norm_cfg.type == 'BN'
    assert cfg.model.decode_head[0].norm_cfg.type == 'BN'
    assert cfg.env_cfg.dist_cfg.backend == 'gloo'
    assert cfg.model_wrapper_cfg.device_ids is None


def test_unknown_cfg_option_is_refused_with_suggestion():
    from mmengine.config import Config
    cfg = Config(dict(model=dict(backbone=dict(checkpoint=None, depth=18)),
                      train_cfg=dict(max_iters=5)))
    check_cfg_options(cfg, {'model.backbone.checkpoint': 'x', 'train_cfg.max_iters': 2})
    with pytest.raises(UnknownConfigKeyError, match=r"model\.backbone\.checkpiont.*"
                                                    r"model\.backbone\.checkpoint"):
        check_cfg_options(cfg, {'model.backbone.checkpiont': 'x'})
