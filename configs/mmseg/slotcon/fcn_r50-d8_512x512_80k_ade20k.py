# SlotCon's ADE20K protocol (20210 train, 2000 val, 150 classes): MMSeg's standard
# fcn_r50-d8_512x512_80k_ade20k recipe on a torchvision-stem ResNet-50: output stride 8,
# FCN head (2 convs, 512 channels, input concat, dropout 0.1) + auxiliary FCN head on layer3
# (loss weight 0.4), 512x512 crops, 80k iterations, SGD lr 0.01 poly, wd 5e-4, 4 GPUs x 4.
#
#   tools/dist_train.sh configs/mmseg/slotcon/fcn_r50-d8_512x512_80k_ade20k.py 4 \
#       --work-dir work_dirs/slotcon_ade20k \
#       --cfg-options model.backbone.init_cfg.checkpoint=work_dirs/slotcon_r50_mmseg.pth
#   python tools/test.py configs/mmseg/slotcon/fcn_r50-d8_512x512_80k_ade20k.py \
#       work_dirs/slotcon_ade20k/iter_80000.pth
#
# The backbone: mmseg's `ResNet` with torchvision's stem (deep_stem=False, style 'pytorch'),
# NOT the stock config's ResNetV1c (deep stem: other keys than a torchvision checkpoint).
# 'PRETRAIN' is a placeholder for the converted checkpoint (set it as above; made with
# python tools/convert_checkpoint.py IN OUT --src-format torchvision --dst-format mmseg);
# init_cfg `CheckedPretrained` stops the run naming any key that does not match.
# Input: torchvision's ImageNet normalisation in 0-255 units, RGB. SyncBN (BN without GPU).
#
# Data: data/ade/ADEChallengeData2016 as MMSeg's dataset preparation guide describes
# (https://mmsegmentation.readthedocs.io/en/latest/user_guides/2_dataset_prepare.html#ade20k:
# images/{training,validation}, annotations/{training,validation}; label 0 = "other" is
# ignored: reduce_zero_label). Another place:
#   --cfg-options train_dataloader.dataset.data_root=DIR val_dataloader.dataset.data_root=DIR
_base_ = ['../_base_/default_runtime.py']
crop_size = (512, 512)
num_classes = 150
norm_cfg = dict(type='SyncBN', requires_grad=True)  # becomes BN without GPU (compat)
data_preprocessor = dict(
    type='SegDataPreProcessor',
    mean=[123.675, 116.28, 103.53],  # ImageNet (torchvision), RGB, 0-255
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
        channels=512,
        num_convs=2,
        concat_input=True,
        dropout_ratio=0.1,
        num_classes=num_classes,
        norm_cfg=norm_cfg,
        align_corners=False,
        loss_decode=dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0)),
    auxiliary_head=dict(
        type='FCNHead',
        in_channels=1024,
        in_index=2,
        channels=256,
        num_convs=1,
        concat_input=False,
        dropout_ratio=0.1,
        num_classes=num_classes,
        norm_cfg=norm_cfg,
        align_corners=False,
        loss_decode=dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=0.4)),
    train_cfg=dict(),
    test_cfg=dict(mode='whole'))

dataset_type = 'ADE20KDataset'
data_root = 'data/ade/ADEChallengeData2016'
train_pipeline = [
    dict(type='LoadImageFromFileChecked'),
    dict(type='LoadAnnotationsChecked', num_classes=num_classes, reduce_zero_label=True),
    dict(type='RandomResize', scale=(2048, 512), ratio_range=(0.5, 2.0), keep_ratio=True),
    dict(type='RandomCrop', crop_size=crop_size, cat_max_ratio=0.75),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PhotoMetricDistortion'),
    dict(type='PackSegInputs'),  # padded to crop_size by the data preprocessor
]
test_pipeline = [
    dict(type='LoadImageFromFileChecked'),
    dict(type='Resize', scale=(2048, 512), keep_ratio=True),
    dict(type='LoadAnnotationsChecked', num_classes=num_classes, reduce_zero_label=True),
    dict(type='PackSegInputs'),
]
train_dataloader = dict(
    batch_size=4,  # per GPU; 4 GPUs
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        data_prefix=dict(img_path='images/training', seg_map_path='annotations/training'),
        pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=1,
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        data_prefix=dict(img_path='images/validation', seg_map_path='annotations/validation'),
        pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(type='IoUMetric', iou_metrics=['mIoU'])
test_evaluator = val_evaluator

max_iters = 80000
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='SGD', lr=0.01, momentum=0.9, weight_decay=5e-4))
param_scheduler = [  # no `end`: the runner ends it at train_cfg.max_iters
    dict(type='PolyLR', eta_min=1e-4, power=0.9, begin=0, by_epoch=False)
]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters, val_interval=8000)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
default_hooks = dict(checkpoint=dict(interval=8000))
