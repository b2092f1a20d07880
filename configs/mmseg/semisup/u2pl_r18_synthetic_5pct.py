# U2PL (entropy-drop pseudo-labels + contrast against unreliable pixels with a per-class
# memory bank) on the built-in synthetic scenes, 5% labelled (the same shipped split as
# reco_r18_synthetic_5pct.py), deep-stem ResNet-18 DeepLabV3+ at OS8 with the aux head.
# One CutMix with probability 0.5, ONE student forward on [labelled; unlabelled].
#   python tools/train.py configs/mmseg/semisup/u2pl_r18_synthetic_5pct.py
_base_ = ['./reco_r18_synthetic_5pct.py']
max_iters = 300
model = dict(
    # deep_stem=False takes a standard-stem file (e.g. the demo's SlotCon ResNet-18)
    network=dict(_delete_=True, type='U2PLNetwork', num_classes=8, depth=18, output_stride=8,
                 aux=True, deep_stem=True, norm_cfg=dict(type='SyncBN', requires_grad=True),
                 init_cfg=dict(type='Pretrained', checkpoint=None)),  # None: random start
    method='u2pl',
    unsup_loss=dict(_delete_=True, type='EntropyDropCELoss', drop_percent=80),
    # the memory bank: 2000 keys per class (U2PL: 30000, 50000 for class 0) for the CPU run;
    # loss_weight: U2PL's shipped configs 1, its paper 0.1 (issues #52, #57)
    contrast_loss=dict(_delete_=True, type='U2PLContrastiveLoss', num_queries=64,
                       num_negatives=50, temperature=0.5, low_entropy_threshold=20,
                       queue_size=2000, queue_size_class0=2000, loss_weight=1.0),
    # 100 supervised-only iterations before the teacher's pseudo-labels count: from a random
    # start on 10 labelled images, 20 gave 13.53 mIoU and 0 gave 10.44 (docs/semisup.md)
    u2pl=dict(sup_only_iters=100, iters_per_epoch=25, aux_weight=0.4))
