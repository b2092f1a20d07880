# The linear probe of frozen features, ViCE's protocol: frozen backbone features ->
# 1x1 conv -> BN -> 1x1 conv (conv_seg), no activation, no dropout, no input concat:
# mmseg's stock FCNHead with num_convs=1, kernel_size=1, act_cfg=None.
# Cross-entropy, ignore 255. Configs set the backbone depth, in_channels and num_classes.
norm_cfg = dict(type='SyncBN', requires_grad=True)  # becomes BN without GPU (compat)
data_preprocessor = dict(
    type='SegDataPreProcessor',
    mean=[123.675, 116.28, 103.53],  # ImageNet, RGB, 0-255
    std=[58.395, 57.12, 57.375],
    bgr_to_rgb=True,
    pad_val=0,
    seg_pad_val=255,
    size_divisor=32)
model = dict(
    type='EncoderDecoder',
    data_preprocessor=data_preprocessor,
    backbone=dict(
        type='FrozenResNet',
        depth=50,
        checkpoint=None,  # a converted checkpoint (tools/convert_checkpoint.py); None = random
        num_stages=4,
        out_indices=(3,),
        strides=(1, 2, 1, 1),  # output stride 8
        dilations=(1, 1, 2, 4),
        contract_dilation=False,
        norm_cfg=dict(type='BN', requires_grad=False),
        style='pytorch'),
    decode_head=dict(
        type='FCNHead',
        in_channels=2048,
        in_index=0,
        channels=256,
        num_convs=1,
        kernel_size=1,
        act_cfg=None,
        concat_input=False,
        dropout_ratio=0.0,
        num_classes=8,
        norm_cfg=norm_cfg,
        align_corners=False,
        loss_decode=dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0,
                         avg_non_ignore=True)),
    train_cfg=dict(),
    test_cfg=dict(mode='whole'))
