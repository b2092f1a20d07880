"""Every fix densessl needs for MMSegmentation 1.2.2 / mmengine 0.10.7 / mmcv-lite 2.1.0.

This is the one adapter module between densessl and those frameworks: nothing is patched
in site-packages, and no other module of the code base works around them. ``apply()`` runs
when ``mmseg_plugins`` is imported (configs load it through ``custom_imports``; the tools
import it first). Each fix names the problem it solves; ``tests/test_mmseg_compat.py``
shows each problem without its fix and checks the fix.

1. ``mmcv.ops`` stand-in: ``import mmseg.models`` fails under mmcv-lite.
2. mmengine checkpoints under torch's weights-only ``torch.load``.
3. CPU multi-process runs (torchrun / slurm + gloo): ``torch.cuda.set_device`` no-op, and
   :func:`adapt_config_for_device` for the DDP wrapper, backend and SyncBN.
4. ``init_cfg=dict(type='Pretrained')`` only logs keys that do not fit: it becomes the
   checked ``CheckedPretrained`` (``mmseg_plugins.checked_pretrained``), which also runs
   after the module's children's own init like mmengine's ``Pretrained`` (tests:
   ``tests/test_mmseg_checked_init.py``).
"""
import logging
import pickle
import sys
import types

import torch
import torch.nn.functional as F

_applied = False


# -------------------------------------------------------------------------------------
# Fix 1. Problem: `import mmseg.models` fails with "No module named 'mmcv._ext'" under
# mmcv-lite. mmseg imports `mmcv.ops` at module level (models/utils/point_sample.py,
# models/losses/focal_loss.py, decode_heads/{point,san,cc,psa}_head.py,
# utils/mask_classification.py), and mmcv-lite ships the Python files of mmcv.ops but not
# the compiled `mmcv._ext` they load. Fix: only when the real `mmcv.ops` cannot be
# imported, install a small stand-in module as sys.modules['mmcv.ops'] with the names
# mmseg imports: pure-PyTorch `point_sample` and `sigmoid_focal_loss` (same semantics as
# mmcv's), and the compiled-only ops as classes that raise a clear error when used.
# -------------------------------------------------------------------------------------
def point_sample(input, points, align_corners=False, **kwargs):
    """Bilinear sampling of ``input`` (N, C, H, W) at ``points`` in [0, 1] x [0, 1]
    coordinates ``(x, y)``, exactly as ``mmcv.ops.point_sample`` (grid_sample based).

    ``points`` (N, P, 2) gives (N, C, P); (N, Hp, Wp, 2) gives (N, C, Hp, Wp). Points
    outside the map read zeros (grid_sample's default zero padding).
    """
    add_dim = points.dim() == 3
    if add_dim:
        points = points.unsqueeze(2)
    output = F.grid_sample(input, 2.0 * points - 1.0, align_corners=align_corners, **kwargs)
    return output.squeeze(3) if add_dim else output


def sigmoid_focal_loss(input, target, gamma=2.0, alpha=0.25, weight=None, reduction='mean'):
    """Sigmoid focal loss (Lin et al. 2017), the semantics of mmcv's compiled kernel.

    ``input``: logits (N, C); ``target``: class indices (N,) in ``[0, C]``, where ``C``
    means background (negative for every class). Per element::

        -alpha       * (1 - p)^gamma * log(p)       if target == c
        -(1 - alpha) * p^gamma       * log(1 - p)   otherwise,      p = sigmoid(input)

    ``weight`` (C,) scales every element of sample n by ``weight[target[n]]`` (as mmcv's
    kernel; background samples keep weight 1). ``reduction``: 'none' gives (N, C), 'sum'
    the sum, 'mean' the sum divided by N (mmcv's definition).
    """
    if reduction not in ('none', 'mean', 'sum'):
        raise ValueError(f"reduction must be 'none', 'mean' or 'sum', got {reduction!r}")
    num_classes = input.size(1)
    target = target.long()
    one_hot = F.one_hot(target, num_classes=num_classes + 1)[:, :num_classes].type_as(input)
    log_p, log_not_p = F.logsigmoid(input), F.logsigmoid(-input)
    p = input.sigmoid()
    loss = (-alpha * one_hot * (1 - p).pow(gamma) * log_p
            - (1 - alpha) * (1 - one_hot) * p.pow(gamma) * log_not_p)
    if weight is not None:
        per_sample = torch.cat([weight.type_as(input), input.new_ones(1)])[target]
        loss = loss * per_sample.view(-1, 1)
    if reduction == 'mean':
        return loss.sum() / input.size(0)
    if reduction == 'sum':
        return loss.sum()
    return loss


COMPILED_ONLY_OPS = ('CrissCrossAttention', 'PSAMask', 'DeformConv2d', 'ModulatedDeformConv2d')


class CompiledOpUnavailableError(RuntimeError):
    """An mmcv op that only exists in the compiled (full) mmcv build was used."""


def _compiled_only_op(name):
    def __init__(self, *args, **kwargs):
        raise CompiledOpUnavailableError(
            f'mmcv.ops.{name} needs the compiled ops of full mmcv, which mmcv-lite does not '
            f'ship. Install full mmcv instead of mmcv-lite: pip install mmcv==2.1.0 (built '
            f'from source, ~15 min on 2 cores; see docs/install.md), or use a config without '
            f'this op.')
    return type(name, (torch.nn.Module,), {'__init__': __init__, '__module__': __name__,
                                           '__doc__': f'Stand-in: {name} needs full mmcv.'})


def real_mmcv_ops_available():
    """True when ``mmcv.ops`` (full mmcv with compiled ops) imports; never installs it."""
    module = sys.modules.get('mmcv.ops')
    if module is not None:
        return not getattr(module, '__densessl_stand_in__', False)
    try:
        import mmcv.ops  # noqa: F401
        return True
    except (ImportError, OSError):
        for name in [m for m in sys.modules if m == 'mmcv.ops' or m.startswith('mmcv.ops.')]:
            del sys.modules[name]  # drop the half-imported package before the stand-in
        return False


def install_mmcv_ops_stand_in():
    """Install the stand-in when the real ``mmcv.ops`` does not import. Returns True if
    installed (or already there), False when full mmcv is present."""
    if real_mmcv_ops_available():
        return False
    if 'mmcv.ops' in sys.modules:
        return True
    stand_in = types.ModuleType('mmcv.ops', 'densessl stand-in for mmcv.ops under mmcv-lite '
                                            '(mmseg_plugins.compat, fix 1)')
    stand_in.__densessl_stand_in__ = True
    stand_in.point_sample = point_sample
    stand_in.sigmoid_focal_loss = sigmoid_focal_loss
    for name in COMPILED_ONLY_OPS:
        setattr(stand_in, name, _compiled_only_op(name))
    sys.modules['mmcv.ops'] = stand_in
    import mmcv
    mmcv.ops = stand_in
    return True


# -------------------------------------------------------------------------------------
# Fix 2. Problem: torch.load defaults to weights_only=True (torch >= 2.6), and an mmengine
# checkpoint pickles more than tensors: the message hub's HistoryBuffer (whose state holds
# its statistic methods, pickled as `getattr(HistoryBuffer, 'mean')`), numpy arrays,
# scalars (np.float64 eta) and dtypes. So tools/test.py, --resume and load_from fail with
# "Weights only load failed ... Unsupported global". The types below were found by saving
# a real checkpoint (tools/train.py, 10 iterations) and listing its globals with
# torch.serialization.get_unsafe_globals_in_checkpoint: HistoryBuffer, numpy.ndarray,
# numpy.dtype (+ its per-type classes, numpy.dtypes.*DType), numpy._core.multiarray.
# _reconstruct and .scalar, builtins.getattr. Fix: allow exactly those with
# torch.serialization.add_safe_globals, never weights_only=False. `getattr` would allow
# any attribute of any allowed object, so it is replaced by `_history_buffer_getattr`,
# which only returns HistoryBuffer's public statistic methods and refuses anything else.
# -------------------------------------------------------------------------------------
def _history_buffer_getattr(obj, name):
    """``getattr`` as weights-only loading may call it: only HistoryBuffer's public
    methods (the statistics its pickled state refers to)."""
    from mmengine.logging.history_buffer import HistoryBuffer
    if obj is HistoryBuffer and not name.startswith('_') and callable(
            getattr(HistoryBuffer, name, None)):
        return getattr(HistoryBuffer, name)
    raise pickle.UnpicklingError(
        f'weights-only load refused getattr({obj!r}, {name!r}): densessl only allows '
        f'HistoryBuffer statistic methods (mmseg_plugins.compat, fix 2). Load trusted files '
        f'with torch.load(..., weights_only=False).')


def mmengine_checkpoint_safe_globals():
    """The globals an mmengine checkpoint needs beyond torch's default allowlist."""
    import numpy as np
    from mmengine.logging.history_buffer import HistoryBuffer
    core = np._core if hasattr(np, '_core') else np.core  # numpy 2 / numpy 1
    multiarray = core.multiarray
    dtype_classes = [cls for name, cls in vars(getattr(np, 'dtypes', object)).items()
                     if name.endswith('DType') and isinstance(cls, type)]
    return [HistoryBuffer, np.ndarray, np.dtype, multiarray._reconstruct, multiarray.scalar,
            *dtype_classes, (_history_buffer_getattr, 'builtins.getattr')]


def allow_mmengine_checkpoint_globals():
    torch.serialization.add_safe_globals(mmengine_checkpoint_safe_globals())


# -------------------------------------------------------------------------------------
# Fix 3. Problem: multi-process training on CPU (torchrun or slurm, gloo backend).
# mmengine's init_dist always calls torch.cuda.set_device(local_rank), which raises on a
# machine without a GPU; and DDP rejects device_ids=[rank] for a CPU model, NCCL needs GPUs
# and SyncBN needs a GPU. Fix: (a) torch.cuda.set_device becomes a no-op, only when CUDA
# is unavailable (applied on import); (b) adapt_config_for_device(cfg) (called by
# tools/train.py and tools/test.py) sets the CPU DDP wrapper, the gloo backend and BN.
# -------------------------------------------------------------------------------------
def _cpu_safe_set_device(device):
    """torch.cuda.set_device while no CUDA device exists: nothing to select."""
    if torch.cuda.is_available():
        return _cpu_safe_set_device.original(device)
    return None


def install_cpu_safe_cuda_set_device():
    if torch.cuda.is_available() or torch.cuda.set_device is _cpu_safe_set_device:
        return False
    _cpu_safe_set_device.original = torch.cuda.set_device
    torch.cuda.set_device = _cpu_safe_set_device
    return True


SYNC_BN_TYPES = ('SyncBN', 'MMSyncBN')
CPU_MODEL_WRAPPER = dict(type='MMDistributedDataParallel', device_ids=None,
                         broadcast_buffers=False)


def _note(message):
    from mmengine.logging import print_log
    print_log(f'[densessl compat] {message}', logger='current', level=logging.WARNING)


def adapt_config_for_device(cfg):
    """Make a GPU-oriented config run on CPU; returns ``cfg`` (changed in place).

    Nothing changes when CUDA is available. Without CUDA:

    - ``model_wrapper_cfg = dict(type='MMDistributedDataParallel', device_ids=None,
      broadcast_buffers=False)``, unless the config sets a wrapper;
    - ``env_cfg.dist_cfg.backend = 'gloo'``;
    - every ``SyncBN`` norm layer of ``cfg.model`` becomes ``BN`` (logged).
    """
    if torch.cuda.is_available():
        return cfg
    if cfg.get('model_wrapper_cfg') is None:
        cfg.model_wrapper_cfg = dict(CPU_MODEL_WRAPPER)
    if cfg.get('env_cfg') is None:
        cfg.env_cfg = dict()
    if cfg.env_cfg.get('dist_cfg') is None:
        cfg.env_cfg.dist_cfg = dict()
    if cfg.env_cfg.dist_cfg.get('backend') != 'gloo':
        cfg.env_cfg.dist_cfg.backend = 'gloo'
    converted = _sync_bn_to_bn(cfg.get('model'), 'model')
    if converted:
        _note(f'no GPU: SyncBN needs one, so these norm layers use BN instead: '
              f'{", ".join(converted)}')
    return cfg


def _sync_bn_to_bn(node, path):
    """Change SyncBN norm configs in place; returns the dotted paths changed."""
    changed = []
    if isinstance(node, dict):
        if node.get('type') in SYNC_BN_TYPES:
            node['type'] = 'BN'
            changed.append(path)
        for key, value in node.items():
            changed += _sync_bn_to_bn(value, f'{path}.{key}')
    elif isinstance(node, (list, tuple)):
        for index, value in enumerate(node):
            changed += _sync_bn_to_bn(value, f'{path}.{index}')
    return changed


# -------------------------------------------------------------------------------------
# Fix 4. Problem: mmengine's `Pretrained` init (init_cfg=dict(type='Pretrained',
# checkpoint=FILE), what SlotCon's command line passes with --cfg-options
# model.backbone.init_cfg.type=Pretrained model.backbone.init_cfg.checkpoint=PRETRAIN)
# loads with strict=False and only logs missing / unexpected keys: a file whose names do not
# fit (e.g. densessl's old mmseg files, whose keys carried a 'backbone.' prefix) loads
# NOTHING and the backbone trains from its random init. Fix: (a) the weight-initializer
# registry's 'Pretrained' becomes CheckedPretrainedInit (same arguments; raises naming the
# file and the keys; mmseg_plugins.checked_pretrained); (b) BaseModule.init_weights runs a
# 'Pretrained' init after the children's own init_weights (so a ConvModule's kaiming init
# cannot overwrite loaded weights), deciding by the literal type name 'Pretrained': a
# `type='CheckedPretrained'` init would run first and be overwritten. The wrapper below hands
# mmengine such a cfg under the name 'Pretrained' (the same checked class after (a)).
# -------------------------------------------------------------------------------------
def install_checked_pretrained():
    """Make the registry's 'Pretrained' the checked init; returns True if changed now."""
    from mmengine.registry import WEIGHT_INITIALIZERS

    from mmseg_plugins.checked_pretrained import CheckedPretrainedInit
    if WEIGHT_INITIALIZERS.get('Pretrained') is CheckedPretrainedInit:
        return False
    install_checked_pretrained.original = WEIGHT_INITIALIZERS.get('Pretrained')
    WEIGHT_INITIALIZERS.register_module(name='Pretrained', module=CheckedPretrainedInit,
                                        force=True)
    return True


def _init_weights_checked_pretrained_last(self):
    """BaseModule.init_weights, with 'CheckedPretrained' init cfgs ordered as 'Pretrained'."""
    from mmseg_plugins.checked_pretrained import NAME
    original = _init_weights_checked_pretrained_last.original
    cfgs = self.init_cfg
    listed = [cfgs] if isinstance(cfgs, dict) else cfgs
    if self.is_init or not listed or not any(
            isinstance(c, dict) and c.get('type') == NAME for c in listed):
        return original(self)
    self.init_cfg = [dict(c, type='Pretrained') if isinstance(c, dict) and c.get('type') == NAME
                     else c for c in listed]
    try:
        return original(self)
    finally:
        self.init_cfg = cfgs


def install_checked_pretrained_order():
    """(b); installs (a) too: the wrapper hands cfgs over as 'Pretrained'."""
    from mmengine.model import BaseModule
    install_checked_pretrained()
    if BaseModule.init_weights is _init_weights_checked_pretrained_last:
        return False
    _init_weights_checked_pretrained_last.original = BaseModule.init_weights
    BaseModule.init_weights = _init_weights_checked_pretrained_last
    return True


def apply():
    """Apply every fix (idempotent)."""
    global _applied
    if _applied:
        return
    install_mmcv_ops_stand_in()
    allow_mmengine_checkpoint_globals()
    install_cpu_safe_cuda_set_device()
    install_checked_pretrained()
    install_checked_pretrained_order()
    _applied = True
