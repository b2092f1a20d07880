# U2PL (CutMix), PASCAL VOC 2012 "blended": 662 (1/16) of the 10,582 train_aug images
# labelled (U2PL's own split, drawn from the whole aug set), the other 9,920 unlabelled; U2PL's
# pascal config with data_list and n_sup changed to the 662 split (as its README says for
# other splits).
#
#   bash tools/dist_train.sh configs/mmseg/semisup/u2pl_r101_voc_blended_662.py 4
#   python tools/train.py configs/mmseg/semisup/u2pl_r101_voc_blended_662.py   (1 GPU: a
#       quarter of U2PL's batch; the learning rate is not scaled)
#
# Reported (U2PL's README, R101, mIoU on the 1,449 val images): 77.21 (SupOnly 67.87); the
# blended splits differ from CPS's, ST++'s and UniMatch's 1/16 splits (spec 2(a) "Splits").
#
# Data: as u2pl_r101_voc_classic_1464.py. Split: the user's copy of U2PL's
# data/splits/pascal/662/{labeled,unlabeled}.txt (not shipped), by default under
# data/splits/u2pl/; another folder: --cfg-options
#   train_dataloader.dataset.datasets.0.split_file=DIR/labeled.txt
#   train_dataloader.dataset.datasets.1.split_file=DIR/unlabeled.txt
#
# As u2pl_r101_voc_classic_1464.py except the epoch length: (10,582 - 662) / 16 = 620
# iterations, 80 epochs = 49,600 iterations, the first epoch (620) supervised only.
# Differences: as u2pl_r101_voc_classic_1464.py.
_base_ = ['./u2pl_r101_voc_classic_1464.py']
split = 'data/splits/u2pl/pascal/662'
iters_per_epoch = 620  # (10,582 - 662) / (4 GPUs x 4 images)
epochs = 80
sup_only_epochs = 1
max_iters = epochs * iters_per_epoch
train_dataloader = dict(dataset=dict(datasets=[
    dict(type='PascalVOCSplitDataset', data_root='data/VOCdevkit/VOC2012',
         pipeline={{_base_.pipeline}}, split_file=split + '/labeled.txt',
         data_prefix=dict(img_path='JPEGImages', seg_map_path='SegmentationClassAug')),
    dict(type='PascalVOCSplitDataset', data_root='data/VOCdevkit/VOC2012',
         pipeline={{_base_.pipeline}}, split_file=split + '/unlabeled.txt',
         data_prefix=dict(img_path='JPEGImages', seg_map_path='SegmentationClassAug'))]))
model = dict(u2pl=dict(sup_only_iters=sup_only_epochs * iters_per_epoch,
                       iters_per_epoch=iters_per_epoch))
param_scheduler = [dict(type='PolyLR', eta_min=0.0, power=0.9, begin=0, end=max_iters,
                        by_epoch=False)]
train_cfg = dict(max_iters=max_iters, val_interval=iters_per_epoch)
default_hooks = dict(checkpoint=dict(interval=iters_per_epoch * 10))
