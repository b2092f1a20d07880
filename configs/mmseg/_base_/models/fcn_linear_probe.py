# ViCE's linear protocol on frozen features: 1x1 conv -> BN -> 1x1 conv, no activation
# (FCNHead with num_convs=1, kernel_size=1, act_cfg=None), CE loss, ignore 255.
norm_cfg = dict(type='SyncBN', requires_grad=True)  # BN on CPU (mmseg_plugins.compat)
data_preprocessor = dict(
    type='SegDataPreProcessor', mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375],
    bgr_to_rgb=True, pad_val=0, seg_pad_val=255, size_divisor=32)
model = dict(
    type='EncoderDecoder',
    data_preprocessor=data_preprocessor,
    backbone=dict(type='FrozenResNet', depth=50, checkpoint=None, num_stages=4,
                  out_indices=(3,), strides=(1, 2, 1, 1), dilations=(1, 1, 2, 4),
                  norm_cfg=dict(type='BN', requires_grad=False), norm_eval=True, style='pytorch'),
    decode_head=dict(
        type='FCNHead', in_channels=2048, in_index=0, channels=256, num_convs=1,
        kernel_size=1, concat_input=False, dropout_ratio=0.0, act_cfg=None,
        num_classes=27, norm_cfg=norm_cfg, align_corners=False,
        loss_decode=dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0)),
    train_cfg=dict(),
    test_cfg=dict(mode='whole'))
