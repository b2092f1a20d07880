# ViCE's linear-probe schedule (spec 1(a) G, schedule_12k): SGD lr 0.01, momentum 0.9,
# weight decay 5e-4, poly decay (power 0.9) to 1e-4 over 12,000 iterations, evaluated every
# 3000 (checkpoints: set default_hooks.checkpoint.interval in the config). Shared by
# fcn_linear_coco-stuff164k.py and fcn_linear_cityscapes.py.
max_iters = 12000
val_interval = 3000
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='SGD', lr=0.01, momentum=0.9, weight_decay=5e-4))
param_scheduler = [
    dict(type='PolyLR', eta_min=1e-4, power=0.9, begin=0, end=max_iters, by_epoch=False)
]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters, val_interval=val_interval)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
