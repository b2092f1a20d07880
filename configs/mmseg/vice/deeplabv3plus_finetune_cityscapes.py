# Fine-tuning ViCE's whole DeepLabV3+ (ResNet-50, output stride 8) on Cityscapes with mmseg's
# own modules, from a ViCE pretraining checkpoint converted with:
#
#   python tools/convert_checkpoint.py <run dir>/model_final_checkpoint_phaseN.torch \
#       work_dirs/vice/vice_deeplabv3plus_r50_mmseg.pth --src-format vice --dst-format mmseg
#   CKPT=work_dirs/vice/vice_deeplabv3plus_r50_mmseg.pth
#   tools/dist_train.sh configs/mmseg/vice/deeplabv3plus_finetune_cityscapes.py 4 \
#       --cfg-options model.backbone.init_cfg.checkpoint=$CKPT \
#       model.decode_head.init_cfg.0.checkpoint=$CKPT
#
# The converted file holds the ResNet's keys without prefix (mmseg's layout) and the head's
# under 'decode_head.'. Both parts load it through init_cfg `CheckedPretrained`
# (mmseg_plugins/checked_pretrained.py), which fails naming every key that does not fit: the
# backbone takes the unprefixed keys (the decode_head.* ones are set aside), the head those
# under prefix='decode_head.', where only the new classifier conv_seg may be missing (it keeps
# mmseg's Normal(0.01) init). Do not use load_from with this file: it expects whole-model names
# ('backbone.conv1.weight') and, being non-strict, would only log that nothing matched.
# The structure below is the one the converter maps to:
#     mmseg's `ResNet` (torchvision stem; the stock deeplabv3plus config's ResNetV1c has a deep
#     stem with other keys), every 3x3 conv of layer3/4 dilated (contract_dilation=False),
#     DepthwiseSeparableASPPHead with ViCE's widths and align_corners=True. mmseg's separable
#     convs are conv -> BN -> ReLU (ViCE: conv -> ReLU -> BN) and its ASPP bottleneck has a ReLU
#     (ViCE's has none): the converter prints these differences. No auxiliary head (ViCE has none).
# Schedule and data: mmseg's standard DeepLabV3+ Cityscapes recipe (512x1024 crops, 80k
# iterations, 2 images x 4 GPUs); ViCE's repository records no fine-tuning schedule.
_base_ = ['../_base_/default_runtime.py']
crop_size = (512, 1024)
norm_cfg = dict(type='SyncBN', requires_grad=True)  # becomes BN without GPU (compat)
data_preprocessor = dict(
    type='SegDataPreProcessor',
    mean=[123.675, 116.28, 103.53],
    std=[58.395, 57.12, 57.375],
    bgr_to_rgb=True,
    pad_val=0,
    seg_pad_val=255,
    size=crop_size)
model = dict(
    type='EncoderDecoder',
    data_preprocessor=data_preprocessor,
    backbone=dict(
        type='ResNet',
        depth=50,
        num_stages=4,
        out_indices=(0, 1, 2, 3),
        strides=(1, 2, 1, 1),  # output stride 8
        dilations=(1, 1, 2, 4),
        contract_dilation=False,
        norm_cfg=norm_cfg,
        norm_eval=False,
        style='pytorch',
        zero_init_residual=False,
        init_cfg=dict(type='CheckedPretrained', checkpoint='PRETRAIN')),  # set it (top)
    decode_head=dict(
        type='DepthwiseSeparableASPPHead',
        in_channels=2048,
        in_index=3,
        channels=256,  # ViCE's DECODER_CHANNELS
        dilations=(1, 12, 24, 36),  # ViCE's ASPP_RATES for output stride 8
        c1_in_channels=256,
        c1_channels=48,
        dropout_ratio=0.1,
        num_classes=19,
        norm_cfg=norm_cfg,
        align_corners=True,
        init_cfg=[
            dict(type='CheckedPretrained', checkpoint='PRETRAIN', prefix='decode_head.',
                 allow_missing=['conv_seg.']),
            dict(type='Normal', std=0.01, override=dict(name='conv_seg'))],  # mmseg's default
        loss_decode=dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0)),
    train_cfg=dict(),
    test_cfg=dict(mode='whole'))

dataset_type = 'CityscapesDataset'
data_root = 'data/cityscapes'
num_classes = 19
train_pipeline = [
    dict(type='LoadImageFromFileChecked'),
    dict(type='LoadAnnotationsChecked', num_classes=num_classes),
    dict(type='RandomResize', scale=(2048, 1024), ratio_range=(0.5, 2.0), keep_ratio=True),
    dict(type='RandomCrop', crop_size=crop_size, cat_max_ratio=0.75),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PhotoMetricDistortion'),
    dict(type='PackSegInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFileChecked'),
    dict(type='Resize', scale=(2048, 1024), keep_ratio=True),
    dict(type='LoadAnnotationsChecked', num_classes=num_classes),
    dict(type='PackSegInputs'),
]
train_dataloader = dict(
    batch_size=2,
    num_workers=2,
    persistent_workers=True,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        data_prefix=dict(img_path='leftImg8bit/train', seg_map_path='gtFine/train'),
        pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=1,
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        data_prefix=dict(img_path='leftImg8bit/val', seg_map_path='gtFine/val'),
        pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(type='IoUMetric', iou_metrics=['mIoU'])
test_evaluator = val_evaluator

max_iters = 80000
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='SGD', lr=0.01, momentum=0.9, weight_decay=5e-4))
param_scheduler = [
    dict(type='PolyLR', eta_min=1e-4, power=0.9, begin=0, end=max_iters, by_epoch=False)
]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters, val_interval=8000)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
default_hooks = dict(checkpoint=dict(interval=8000))
