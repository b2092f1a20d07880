# A tiny run of the MoCo / SlotCon fine-tuning protocol (fcn_d6_r50-d16) on densessl's
# synthetic street scenes (8 classes, 128x256; python tools/gen_synthetic_scenes.py --out
# data/synthetic_scenes): the same structure at ResNet-18 scale -- torchvision-stem ResNet
# at output stride 16 (strides (1, 2, 2, 1), dilations (1, 1, 1, 2)), FCN head with 2 convs,
# dilation 6, no concat / dropout / auxiliary head, channels 256 * 512 / 2048 = 64 --,
# the whole network trained (SGD, steps at 70% / 90%), 20 iterations. The tests run it
# through tools/train.py and tools/dist_train.sh with a converted checkpoint:
#
#   python tools/convert_checkpoint.py r18.pth work_dirs/r18_mmseg.pth \
#       --src-format torchvision --dst-format mmseg
#   python tools/train.py configs/mmseg/slotcon/fcn_d6_r18-d16_synthetic.py \
#       --cfg-options model.backbone.init_cfg.checkpoint=work_dirs/r18_mmseg.pth
#
# SlotCon's own command-line form works too (plain Pretrained is checked as well, compat):
#   --cfg-options model.backbone.init_cfg.type=Pretrained \
#       model.backbone.init_cfg.checkpoint=work_dirs/r18_mmseg.pth
_base_ = [
    '../_base_/default_runtime.py',
    '../_base_/datasets/synthetic_scenes.py',
    './_base_/fcn_d6_r50-d16.py',
]
model = dict(
    data_preprocessor=dict(size_divisor=16),
    backbone=dict(depth=18),
    decode_head=dict(in_channels=512, channels=64, num_classes=8))

max_iters = 20
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='SGD', lr=0.01, momentum=0.9, weight_decay=1e-4))
param_scheduler = [
    dict(type='MultiStepLR', milestones=[14, 18], gamma=0.1, begin=0, by_epoch=False)
]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters, val_interval=max_iters)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
default_hooks = dict(
    logger=dict(interval=5),
    checkpoint=dict(interval=max_iters))  # validation and checkpoint at the end
