# ViCE's linear probe (spec 1(a) G): the frozen DeepLabV3+ trunk's 128-d embedding,
# L2-normalised, at input resolution (ViCEBackbone) -> mmseg's FCNHead with one 1x1 conv,
# SyncBN, no activation, no dropout, no input concat -> 1x1 conv to the classes.
# Cross-entropy, ignore 255, averaged over all pixels (mmseg 0.17's behaviour, as in ViCE).
_base_ = ['../../_base_/models/fcn_linear_probe.py']
model = dict(
    backbone=dict(
        _delete_=True,
        type='ViCEBackbone',
        vissl_config=None,  # the VISSL YAML of the pretraining run; replaces `trunk` when set
        trunk=dict(depth=50, output_stride=8),  # ViCE's trunk (used without a YAML)
        checkpoint=None),  # VISSL checkpoint of the trunk; None = random init (warns)
    decode_head=dict(
        in_channels=128,
        in_index=0,
        channels=256,
        loss_decode=dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0,
                         avg_non_ignore=False)))
