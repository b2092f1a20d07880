"""Every fix densessl needs for MMSegmentation 1.2.2 / mmengine 0.10.7 / mmcv-lite 2.1.0.

Applied once, when ``mmseg_plugins`` is imported; nothing else in the code base knows the
fixes exist. Each names the problem it solves and has a test in
``tests/test_mmseg_compat.py`` that fails without it.
"""
import logging
import sys
import types

import torch
import torch.nn.functional as F

_applied = False
logger = logging.getLogger(__name__)


# Problem 1: `import mmseg.models` fails with "No module named 'mmcv._ext'" under mmcv-lite:
# mmseg imports `mmcv.ops` at module level in a few files, and mmcv-lite ships no compiled
# ops. Fix: when the real `mmcv.ops` cannot be imported, install a stand-in holding the
# names mmseg imports: pure-PyTorch `point_sample` and `sigmoid_focal_loss`, and
# placeholders for the compiled-only ops that raise a clear error when used.
def point_sample(input, points, align_corners=False, **kwargs):
    """Sample ``input`` (N, C, H, W) at ``points`` (N, P, 2) or (N, Hp, Wp, 2) in [0, 1]
    coordinates (x, y), as mmcv.ops.point_sample does. Returns (N, C, P) or (N, C, Hp, Wp).
    """
    add_dim = points.dim() == 3
    if add_dim:
        points = points.unsqueeze(2)
    out = F.grid_sample(input, 2.0 * points - 1.0, align_corners=align_corners, **kwargs)
    return out.squeeze(3) if add_dim else out


def sigmoid_focal_loss(pred, target, gamma=2.0, alpha=0.25, weight=None, reduction='mean'):
    """Focal loss (Lin et al. 2017) on logits ``pred`` (N, C) and class indices ``target``
    (N,), as mmcv.ops.sigmoid_focal_loss: -alpha_t (1 - p_t)^gamma log(p_t) per element,
    summed over classes per sample, then reduced; ``weight`` (C,) scales each class."""
    one_hot = F.one_hot(target.long(), num_classes=pred.size(1) + 1)[:, :pred.size(1)]
    one_hot = one_hot.type_as(pred)
    p = pred.sigmoid()
    p_t = p * one_hot + (1 - p) * (1 - one_hot)
    alpha_t = alpha * one_hot + (1 - alpha) * (1 - one_hot)
    loss = -alpha_t * (1 - p_t).pow(gamma) * F.logsigmoid(
        pred * (2 * one_hot - 1))
    if weight is not None:
        loss = loss * weight.view(1, -1)
    if reduction == 'mean':
        return loss.sum() / pred.size(0)
    if reduction == 'sum':
        return loss.sum()
    return loss


def _needs_full_mmcv(name):
    class CompiledOpUnavailable(torch.nn.Module):
        def __init__(self, *args, **kwargs):
            raise RuntimeError(
                f'mmcv.ops.{name} needs the compiled ops of full mmcv, which mmcv-lite does not '
                f'ship. Build it: pip install mmcv==2.1.0 (from source, ~15 min; see '
                f'docs/install.md), or choose a config without this op.')
    CompiledOpUnavailable.__name__ = name
    return CompiledOpUnavailable


def _install_mmcv_ops_stand_in():
    try:
        import mmcv.ops  # noqa: F401  (full mmcv: nothing to do)
        return False
    except (ImportError, OSError):
        pass
    stand_in = types.ModuleType('mmcv.ops')
    stand_in.__doc__ = 'densessl stand-in for mmcv.ops under mmcv-lite (mmseg_plugins.compat)'
    stand_in.point_sample = point_sample
    stand_in.sigmoid_focal_loss = sigmoid_focal_loss
    for name in ('CrissCrossAttention', 'PSAMask', 'DeformConv2d', 'ModulatedDeformConv2d'):
        setattr(stand_in, name, _needs_full_mmcv(name))
    sys.modules['mmcv.ops'] = stand_in
    import mmcv
    mmcv.ops = stand_in
    return True


# Problem 2: torch.load defaults to weights_only=True since torch 2.6, and mmengine
# checkpoints pickle a few non-tensor objects (the message hub's HistoryBuffer, numpy
# arrays, scalars and dtypes, which numpy 2 pickles through `getattr`), so `tools/test.py`,
# `--resume` and `load_from` fail with "Weights only load failed". Fix: mmengine's loader
# for local files runs with exactly those globals allowed. The allowance is scoped to that
# loader (a context manager), so other torch.load calls keep the default allowlist.
def mmengine_checkpoint_globals():
    import numpy as np
    from mmengine.logging.history_buffer import HistoryBuffer
    multiarray = np._core.multiarray
    dtypes = [type(np.dtype(t)) for t in ('float16', 'float32', 'float64', 'int8', 'int16',
                                          'int32', 'int64', 'uint8', 'bool')]
    return [HistoryBuffer, np.ndarray, np.dtype, multiarray._reconstruct, multiarray.scalar,
            getattr, *dtypes]


def _allow_mmengine_checkpoint_types():
    from mmengine.runner.checkpoint import CheckpointLoader, load_from_local

    allowed = mmengine_checkpoint_globals()

    @CheckpointLoader.register_scheme(prefixes='', force=True)
    def load_from_local_with_mmengine_types(filename, map_location):
        with torch.serialization.safe_globals(allowed):
            return load_from_local(filename, map_location)


# Problem 3: CPU multi-process training (torchrun + gloo). mmengine's init_dist always
# calls torch.cuda.set_device(local_rank), which raises on a machine without a GPU.
# Fix: make set_device a no-op while no CUDA device exists. The DDP wrapper and backend
# are set per config by `adapt_config_for_device` (called by tools/train.py, tools/test.py).
def _cpu_safe_cuda_set_device():
    if torch.cuda.is_available():
        return
    original = torch.cuda.set_device

    def set_device(device):
        if torch.cuda.is_available():
            return original(device)
        return None

    torch.cuda.set_device = set_device


def adapt_config_for_device(cfg):
    """Make a GPU-oriented config run on CPU when no GPU exists (no-op with a GPU).

    DDP rejects ``device_ids=[rank]`` for a CPU model, NCCL needs GPUs, and SyncBN needs a
    GPU; so: DDP with ``device_ids=None``, the gloo backend, and SyncBN -> BN.
    """
    if torch.cuda.is_available():
        return cfg
    if cfg.get('model_wrapper_cfg') is None:
        cfg.model_wrapper_cfg = dict(type='MMDistributedDataParallel', device_ids=None,
                                     broadcast_buffers=False)
    cfg.setdefault('env_cfg', {}).setdefault('dist_cfg', {})['backend'] = 'gloo'
    replaced = _sync_bn_to_bn(cfg.get('model', {}))
    if replaced:
        logger.warning('no GPU: %d SyncBN layers of the config use BN instead', replaced)
    return cfg


def _sync_bn_to_bn(node):
    count = 0
    if isinstance(node, dict):
        if node.get('type') == 'SyncBN':
            node['type'] = 'BN'
            count += 1
        for value in node.values():
            count += _sync_bn_to_bn(value)
    elif isinstance(node, (list, tuple)):
        for value in node:
            count += _sync_bn_to_bn(value)
    return count


def apply():
    global _applied
    if _applied:
        return
    _install_mmcv_ops_stand_in()
    _allow_mmengine_checkpoint_types()
    _cpu_safe_cuda_set_device()
    _applied = True
