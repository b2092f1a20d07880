# Linear probe of a frozen ResNet-18 on the synthetic scenes (the demo's evaluation).
#   python tools/train.py configs/mmseg/linear_probe/fcn_linear_r18_synthetic.py \
#       --cfg-options model.backbone.checkpoint=work_dirs/demo/simclr_resnet18_mmseg.pth
# model.backbone.checkpoint=None probes a randomly initialised (seed 0) backbone.
_base_ = ['../_base_/default_runtime.py', '../_base_/datasets/synthetic_scenes.py',
          '../_base_/models/fcn_linear_probe.py']
model = dict(
    backbone=dict(depth=18),  # output stride 8 (dilated layer3/4), layer4: 512 channels
    decode_head=dict(in_channels=512, num_classes=8, norm_cfg=dict(type='BN', requires_grad=True)))
# ViCE's schedule (SGD 0.01, poly 0.9, min 1e-4), shortened for a CPU
max_iters = 600
optim_wrapper = dict(type='OptimWrapper',
                     optimizer=dict(type='SGD', lr=0.01, momentum=0.9, weight_decay=5e-4))
param_scheduler = [dict(type='PolyLR', eta_min=1e-4, power=0.9, begin=0, end=max_iters,
                        by_epoch=False)]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters, val_interval=max_iters)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
default_hooks = dict(checkpoint=dict(interval=200), logger=dict(interval=50))
