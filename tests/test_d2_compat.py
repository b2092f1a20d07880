"""d2_plugins.compat: each detectron2 problem shown without its fix, and the fix checked."""
import os.path as osp
import pickle

import pytest
import torch
import torch.distributed as dist
import torch.nn as nn

pytest.importorskip('detectron2', reason='detectron2 is not installed (docs/install.md)')

import d2_plugins  # noqa: E402,F401
from detectron2.config import get_cfg  # noqa: E402
from detectron2.engine import defaults  # noqa: E402
from detectron2.utils import comm  # noqa: E402

from d2_plugins.checked_checkpointer import (CheckedDetectionCheckpointer,  # noqa: E402
                                             CheckpointKeyError)
from d2_plugins.compat import adapt_config_for_device  # noqa: E402

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))


@pytest.fixture
def one_process_group(tmp_path):
    """A real gloo process group of one CPU process (what each rank of a CPU run has)."""
    dist.init_process_group('gloo', init_method=f'file://{tmp_path}/store', rank=0,
                            world_size=1)
    yield
    dist.destroy_process_group()


def test_fix1_detectron2s_create_ddp_model_fails_for_a_cpu_model(one_process_group, monkeypatch):
    monkeypatch.setattr(comm, 'get_world_size', lambda: 2)  # as on each rank of 2 processes
    monkeypatch.setattr(comm, 'get_local_rank', lambda: 0)
    original = defaults.create_ddp_model.__wrapped__
    with pytest.raises(ValueError, match='device_ids'):
        original(nn.Linear(2, 2), broadcast_buffers=False)
    wrapped = defaults.create_ddp_model(nn.Linear(2, 2), broadcast_buffers=False)
    assert isinstance(wrapped, nn.parallel.DistributedDataParallel)


def test_fix2_torch_syncbn_fails_on_cpu_in_a_process_group(one_process_group):
    bn = nn.SyncBatchNorm(4).train()
    with pytest.raises(ValueError, match='GPU'):
        bn(torch.randn(2, 4, 3, 3))
    from detectron2.layers import get_norm
    naive = get_norm('naiveSyncBN', 4).train()
    assert naive(torch.randn(2, 4, 3, 3)).shape == (2, 4, 3, 3)


def test_fix2_config_on_a_machine_without_gpu():
    cfg = get_cfg()
    cfg.merge_from_file(osp.join(REPO, 'configs/d2/coco_mask_rcnn_R_50_FPN_1x_syncbn.yaml'))
    assert cfg.MODEL.DEVICE == 'cuda' and cfg.MODEL.FPN.NORM == 'SyncBN'
    changes = adapt_config_for_device(cfg)
    if torch.cuda.is_available():
        assert changes == []
        return
    assert cfg.MODEL.DEVICE == 'cpu'
    for key in ('RESNETS', 'FPN', 'ROI_BOX_HEAD', 'ROI_MASK_HEAD'):
        assert getattr(cfg.MODEL, key).NORM == 'naiveSyncBN', key
    assert len(changes) == 5


def test_fix3_defaulttrainer_and_predictor_use_the_checked_checkpointer(tmp_path):
    assert defaults.DetectionCheckpointer is CheckedDetectionCheckpointer
    cfg = get_cfg()
    cfg.merge_from_file(osp.join(REPO, 'configs/d2/synthetic_mask_rcnn_R_18_FPN_cpu.yaml'))
    adapt_config_for_device(cfg)
    weights = str(tmp_path / 'empty.pkl')
    with open(weights, 'wb') as f:
        pickle.dump({'model': {}, '__author__': 'test', 'matching_heuristics': True}, f)
    cfg.MODEL.WEIGHTS = weights
    with pytest.raises(CheckpointKeyError, match='100 of the 100 keys'):
        defaults.DefaultPredictor(cfg)
