# SlotCon / MoCo fine-tuning protocol on Cityscapes (2975 train, 500 val, 19 classes):
# FCN-D6 on a ResNet-50 at output stride 16 (_base_/fcn_d6_r50-d16.py), 769x769 crops,
# 90k iterations, SGD lr 0.01, steps at 63k / 81k, 2 GPUs x 8 images; sliding-window test
# (769x769 windows, stride 513) on the full 2048x1024 images.
#
#   tools/dist_train.sh configs/mmseg/slotcon/fcn_d6_r50-d16_769x769_90k_cityscapes.py 2 \
#       --work-dir work_dirs/slotcon_cityscapes \
#       --cfg-options model.backbone.init_cfg.checkpoint=work_dirs/slotcon_r50_mmseg.pth
#   python tools/test.py configs/mmseg/slotcon/fcn_d6_r50-d16_769x769_90k_cityscapes.py \
#       work_dirs/slotcon_cityscapes/iter_90000.pth
#
# Data: data/cityscapes as MMSeg's dataset preparation guide builds it
# (https://mmsegmentation.readthedocs.io/en/latest/user_guides/2_dataset_prepare.html#cityscapes:
# leftImg8bit/ + gtFine/ with the *_labelTrainIds.png maps from mmseg's
# tools/dataset_converters/cityscapes.py). Another place:
#   --cfg-options train_dataloader.dataset.data_root=DIR val_dataloader.dataset.data_root=DIR
_base_ = ['../_base_/default_runtime.py', './_base_/fcn_d6_r50-d16.py']
crop_size = (769, 769)
num_classes = 19
data_preprocessor = dict(size=crop_size)
model = dict(
    data_preprocessor=data_preprocessor,
    decode_head=dict(num_classes=num_classes),
    test_cfg=dict(mode='slide', crop_size=crop_size, stride=(513, 513)))

dataset_type = 'CityscapesDataset'
data_root = 'data/cityscapes'
train_pipeline = [  # the protocol's (MoCo's mmseg 0.x pipeline): no photometric distortion
    dict(type='LoadImageFromFileChecked'),
    dict(type='LoadAnnotationsChecked', num_classes=num_classes),
    dict(type='RandomResize', scale=(2049, 1025), ratio_range=(0.5, 2.0), keep_ratio=True),
    dict(type='RandomCrop', crop_size=crop_size),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackSegInputs'),  # padded to crop_size by the data preprocessor
]
test_pipeline = [
    dict(type='LoadImageFromFileChecked'),
    dict(type='Resize', scale=(2049, 1025), keep_ratio=True),
    dict(type='LoadAnnotationsChecked', num_classes=num_classes),
    dict(type='PackSegInputs'),
]
train_dataloader = dict(
    batch_size=8,  # per GPU; 2 GPUs
    num_workers=4,
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

max_iters = 90000
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='SGD', lr=0.01, momentum=0.9, weight_decay=1e-4))
param_scheduler = [
    dict(type='MultiStepLR', milestones=[63000, 81000], gamma=0.1, begin=0,
         by_epoch=False)
]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters, val_interval=9000)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
default_hooks = dict(checkpoint=dict(interval=9000))
