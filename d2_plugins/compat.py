"""Every fix densessl needs for detectron2 0.6 (official repository, built for torch 2.14).

The one adapter module between densessl and detectron2: nothing is patched in
site-packages and no other module works around detectron2. ``apply()`` runs when
``d2_plugins`` is imported; :func:`adapt_config_for_device` runs on every config in
``tools/d2_train_net.py``'s ``setup``. Each fix names its problem;
``tests/test_d2_compat.py`` shows each problem without its fix and checks the fix.

1. CPU multi-process training: ``DefaultTrainer`` wraps the model with
   ``create_ddp_model(model)``, which passes ``device_ids=[local_rank]``; PyTorch's DDP
   rejects ``device_ids`` for a CPU module.
2. ``SyncBN`` on CPU: ``torch.nn.SyncBatchNorm`` raises for CPU tensors in a multi-process
   run, so the protocol configs (SyncBN everywhere) cannot run on CPU; and
   ``MODEL.DEVICE`` defaults to ``cuda``.
3. ``DetectionCheckpointer`` (fvcore's ``Checkpointer``) only logs keys it could not load
   and a missing ``MODEL.WEIGHTS`` gives a bare assertion: ``DefaultTrainer`` and
   ``DefaultPredictor`` get the checked one (``d2_plugins.checked_checkpointer``).
"""
import logging

import torch

_applied = False
logger = logging.getLogger('d2_plugins')


# -------------------------------------------------------------------------------------
# Fix 1. Problem: `DefaultTrainer.__init__` calls `create_ddp_model(model,
# broadcast_buffers=False)`, which adds `device_ids=[comm.get_local_rank()]`. For a model on
# the CPU, torch's DistributedDataParallel raises "DistributedDataParallel device_ids and
# output_device arguments only work with single-device/multiple-device GPU modules or CPU
# modules, but got device_ids [0] ...", so `--num-gpus 2` (detectron2's `launch`, gloo) fails
# on a CPU machine. Fix: the function DefaultTrainer calls leaves `device_ids` out for a
# model whose parameters are on the CPU; GPU models get detectron2's behaviour unchanged.
# -------------------------------------------------------------------------------------
def _cpu_aware_create_ddp_model(original):
    def create_ddp_model(model, *, fp16_compression=False, **kwargs):
        first = next(model.parameters(), None)
        if first is not None and first.device.type == 'cpu':
            kwargs.setdefault('device_ids', None)
        return original(model, fp16_compression=fp16_compression, **kwargs)
    create_ddp_model.__wrapped__ = original
    return create_ddp_model


def install_cpu_aware_create_ddp_model():
    from detectron2.engine import defaults
    if not hasattr(defaults.create_ddp_model, '__wrapped__'):
        defaults.create_ddp_model = _cpu_aware_create_ddp_model(defaults.create_ddp_model)


# -------------------------------------------------------------------------------------
# Fix 2. Problem: detectron2's norm "SyncBN" is `torch.nn.SyncBatchNorm`, which raises
# "SyncBatchNorm expected input tensor to be on GPU" as soon as it synchronises (training
# with more than one process); and `MODEL.DEVICE` defaults to "cuda", which fails on a
# machine without one. Fix: `adapt_config_for_device(cfg)` (called by tools/d2_train_net.py
# on every config) sets MODEL.DEVICE to "cpu" when CUDA is unavailable and, on the CPU, turns
# every "SyncBN" norm into detectron2's "naiveSyncBN" (`NaiveSyncBatchNorm`: the same
# statistics, averaged over all processes with all_reduce, which gloo supports). On a GPU the
# config is left as it is. Each change is logged.
# -------------------------------------------------------------------------------------
NORM_KEYS = ('MODEL.RESNETS.NORM', 'MODEL.FPN.NORM', 'MODEL.ROI_BOX_HEAD.NORM',
             'MODEL.ROI_MASK_HEAD.NORM', 'MODEL.SEM_SEG_HEAD.NORM')


def _get(cfg, dotted):
    node = cfg
    for part in dotted.split('.'):
        node = getattr(node, part, None)
        if node is None:
            return None
    return node


def _set(cfg, dotted, value):
    *parents, leaf = dotted.split('.')
    node = cfg
    for part in parents:
        node = getattr(node, part)
    setattr(node, leaf, value)


def adapt_config_for_device(cfg):
    """Make a (mutable) detectron2 config run on this machine; returns the changes made."""
    changes = []
    if cfg.MODEL.DEVICE.startswith('cuda') and not torch.cuda.is_available():
        changes.append(f'MODEL.DEVICE {cfg.MODEL.DEVICE} -> cpu (no CUDA device here)')
        cfg.MODEL.DEVICE = 'cpu'
    if cfg.MODEL.DEVICE == 'cpu':
        for key in NORM_KEYS:
            if _get(cfg, key) == 'SyncBN':
                _set(cfg, key, 'naiveSyncBN')
                changes.append(f'{key} SyncBN -> naiveSyncBN (torch SyncBatchNorm needs a GPU)')
    for change in changes:
        logger.warning('d2_plugins.compat: %s', change)
    return changes


# -------------------------------------------------------------------------------------
# Fix 3. Problem: fvcore's Checkpointer, under detectron2's DetectionCheckpointer, loads
# what matches and only logs "Some model parameters or buffers are not found in the
# checkpoint" (and skips shape mismatches with a warning), so a wrong MODEL.WEIGHTS trains a
# partly random backbone without an error. Fix: `detectron2.engine.defaults` (DefaultTrainer,
# DefaultPredictor) uses `CheckedDetectionCheckpointer`, which raises naming the file and
# the keys.
# -------------------------------------------------------------------------------------
def install_checked_checkpointer():
    from detectron2.engine import defaults

    from d2_plugins.checked_checkpointer import CheckedDetectionCheckpointer
    defaults.DetectionCheckpointer = CheckedDetectionCheckpointer


def apply():
    """Apply every fix (idempotent)."""
    global _applied
    if _applied:
        return
    install_cpu_aware_create_ddp_model()
    install_checked_checkpointer()
    _applied = True
