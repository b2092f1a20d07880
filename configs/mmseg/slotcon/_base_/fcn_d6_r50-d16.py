# The MoCo fine-tuning protocol's FCN (MoCo, SlotCon: fcn_d6_r50-d16 on VOC12aug and
# Cityscapes), in MMSeg 1.x terms:
# - backbone: mmseg's `ResNet` with torchvision's stem (deep_stem=False, style 'pytorch': the
#   stride sits in the 3x3 conv), whose parameter names are torchvision's. mmseg's stock FCN
#   configs use ResNetV1c (a deep 3-conv stem), which is NOT what a torchvision / VISSL /
#   SlotCon checkpoint holds. strides (1, 2, 2, 1), dilations (1, 1, 1, 2): output stride 16
#   (layer4 dilated by 2; contract_dilation as in mmseg's fcn_r50-d8 base: its first block's
#   3x3 conv keeps dilation 1);
# - head: FCNHead on layer4, 2 convs 3x3, 256 channels, dilation 6, no input concat, no
#   dropout, no auxiliary head; align_corners=True;
# - SyncBN everywhere (BN on a machine without GPU: mmseg_plugins.compat), norm_eval=False;
# - input: torchvision's ImageNet normalisation (0.485/0.456/0.406, 0.229/0.224/0.225 in 0-1)
#   in mmseg's 0-255 units, RGB.
# The backbone starts from a converted checkpoint through init_cfg `CheckedPretrained`
# (mmseg_plugins/checked_pretrained.py: every key must match, else the run stops naming
# them). 'PRETRAIN' is a placeholder; set it on the command line:
#   --cfg-options model.backbone.init_cfg.checkpoint=work_dirs/slotcon_r50_mmseg.pth
# made from SlotCon's backbone-only checkpoint (torchvision names) with:
#   python tools/convert_checkpoint.py slotcon_backbone.pth work_dirs/slotcon_r50_mmseg.pth \
#       --src-format torchvision --dst-format mmseg
norm_cfg = dict(type='SyncBN', requires_grad=True)
data_preprocessor = dict(
    type='SegDataPreProcessor',
    mean=[123.675, 116.28, 103.53],  # ImageNet (torchvision), RGB, 0-255
    std=[58.395, 57.12, 57.375],
    bgr_to_rgb=True,
    pad_val=0,
    seg_pad_val=255)
model = dict(
    type='EncoderDecoder',
    data_preprocessor=data_preprocessor,
    backbone=dict(
        type='ResNet',
        depth=50,
        num_stages=4,
        out_indices=(0, 1, 2, 3),
        strides=(1, 2, 2, 1),  # output stride 16
        dilations=(1, 1, 1, 2),
        deep_stem=False,  # torchvision's 7x7 stem
        contract_dilation=True,
        norm_cfg=norm_cfg,
        norm_eval=False,
        style='pytorch',
        init_cfg=dict(type='CheckedPretrained', checkpoint='PRETRAIN')),  # set it (above)
    decode_head=dict(
        type='FCNHead',
        in_channels=2048,
        in_index=3,
        channels=256,
        num_convs=2,
        kernel_size=3,
        dilation=6,
        concat_input=False,
        dropout_ratio=0,
        num_classes=21,
        norm_cfg=norm_cfg,
        align_corners=True,
        loss_decode=dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0)),
    train_cfg=dict(),
    test_cfg=dict(mode='whole'))
