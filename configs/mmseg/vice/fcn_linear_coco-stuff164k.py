# ViCE's linear probe on COCO-Stuff-27 (IIC curated Coarse_7 lists: 49,629 train / 2,175
# val), spec 1(a) G; the paper reports aAcc 65.47 / mIoU 27.71 / mAcc 37.18 for exp27.
#
#   tools/dist_train.sh configs/mmseg/vice/fcn_linear_coco-stuff164k.py 8 --cfg-options \
#       model.backbone.vissl_config=<the run's VISSL yaml> \
#       model.backbone.checkpoint=<run dir>/model_final_checkpoint_phase11.torch
#
# model.backbone.vissl_config: VISSL experiment YAML (config.MODEL.TRUNK is read); without it
#     model.backbone.trunk (ResNet-50, output stride 8, ViCE's defaults) defines the trunk.
# model.backbone.checkpoint: VISSL checkpoint of the deeplabv3plus trunk (None = random init).
# Data: data/coco_stuff164k_coarse (see COCOStuffCoarseDataset for the conversion).
_base_ = [
    '../_base_/default_runtime.py',
    '_base_/vice_linear_probe.py',
    '_base_/schedule_12k.py',
]
num_classes = 27
model = dict(decode_head=dict(channels=256, num_classes=num_classes))

dataset_type = 'COCOStuffCoarseDataset'
data_root = 'data/coco_stuff164k_coarse'
train_pipeline = [  # ViCE: no resize, no crop; the preprocessor pads each batch (label 255)
    dict(type='LoadImageFromFileChecked'),
    dict(type='LoadAnnotationsChecked', num_classes=num_classes),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackSegInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFileChecked'),
    dict(type='Resize', scale=(2048, 512), keep_ratio=True),
    dict(type='LoadAnnotationsChecked', num_classes=num_classes),
    dict(type='PackSegInputs'),
]
train_dataloader = dict(
    batch_size=16,  # x 8 GPUs = 128, as in ViCE
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        data_prefix=dict(img_path='images_coarse/train2017',
                         seg_map_path='annotations_coarse/train2017'),
        pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=1,
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        data_prefix=dict(img_path='images_coarse/val2017',
                         seg_map_path='annotations_coarse/val2017'),
        pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(type='IoUMetric', iou_metrics=['mIoU'])
test_evaluator = val_evaluator
default_hooks = dict(checkpoint=dict(interval=3000))
