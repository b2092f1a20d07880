# Shared by the U2PL protocol configs (u2pl_r101_*.py), spec shared/specs/semisup.md 2(a)-(d):
# U2PL's DeepLabV3+ ResNet-101 (deep 64-64-128 stem, OS8 with multi-grid (2, 2, 4), ASPP
# 12/24/36, 512-channel decoder, 256-d representation) from the deep-stem ImageNet
# ResNet-101 that U2PL, CPS, ST++ and UniMatch share (resnet101.pth, linked from U2PL's
# README; put it at data/pretrained/resnet101_deepstem.pth or override
# model.network.init_cfg.checkpoint), a mean teacher (EMA 0.99, parameters only, copied from
# the student at the first semi-supervised iteration), CutMix with probability 0.5, the
# entropy-drop CE (drop_percent 80, annealed per epoch) and the contrastive loss against a
# per-class memory bank of unreliable pixels (30k keys, 50k for class 0); SGD momentum 0.9,
# poly decay (power 0.9) per iteration. U2PL's weak augmentation for both halves: random
# rescale (U[0.5, 1] or U[1, 2] with probability 1/2 each), flip, random crop.
# A protocol config sets: the data, num_classes, labelled_per_batch, the optimizer's lr /
# weight decay / head multiplier, the schedule (epochs x iterations per epoch) and u2pl.
# Differences from U2PL's code, all configs:
# - label padding of the crop is 255 (ignored). U2PL's Crop hard-codes 0, a bug: padding is
#   trained (and in its in-training val, scored) as class 0 (VOC background, Cityscapes road);
# - the contrastive loss has U2PL's open bugs fixed (bug_compat=False: anchor indexing,
#   issue #111; negatives taken as the paper describes, issue #171; the one-hot of batches
#   above 1); contrast_loss.bug_compat=True reproduces the shipped code;
# - the memory bank is a buffer of the model: saved in checkpoints and restored on resume;
# - the teacher is evaluated at every val_interval (U2PL: the student during the
#   supervised-only epochs), with mmseg's inference (model.test_cfg), not U2PL's
#   center-crop in-training val.
_base_ = ['../../_base_/default_runtime.py']
norm_cfg = dict(type='SyncBN', requires_grad=True)
model = dict(
    type='SemiSupervisedSegmentor',
    data_preprocessor=dict(type='SegDataPreProcessor', mean=[123.675, 116.28, 103.53],
                           std=[58.395, 57.12, 57.375], bgr_to_rgb=True, pad_val=0,
                           seg_pad_val=255),
    network=dict(type='U2PLNetwork', num_classes=21, depth=101, output_stride=8, aux=False,
                 norm_cfg=norm_cfg,
                 init_cfg=dict(type='Pretrained',
                               checkpoint='data/pretrained/resnet101_deepstem.pth')),
    num_classes=21,
    labelled_per_batch=4,
    method='u2pl',
    sup_loss=None,  # cross-entropy, ignore 255
    unsup_loss=dict(type='EntropyDropCELoss', drop_percent=80),
    contrast_loss=dict(type='U2PLContrastiveLoss', num_queries=256, num_negatives=50,
                       temperature=0.5, low_rank=3, high_rank=20, current_class_threshold=0.3,
                       current_class_negative_threshold=1.0, low_entropy_threshold=20,
                       queue_size=30000, queue_size_class0=50000,
                       # U2PL's shipped configs: 1; its paper: 0.1 (issues #52, #57)
                       loss_weight=1.0, bug_compat=False),
    predict_with='teacher',
    test_cfg=dict(mode='whole'))
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
val_evaluator = dict(type='IoUMetric', iou_metrics=['mIoU'])
test_evaluator = val_evaluator
default_hooks = dict(logger=dict(interval=50))
custom_hooks = [dict(type='RunManifestHook'), dict(type='ResultsTableHook'),
                dict(type='MeanTeacherHook', max_momentum=0.99)]
