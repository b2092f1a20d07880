"""Semi-supervised segmentation in MMSeg 1.x (ReCo, U2PL): thin registered parts around
``densessl.semisup``. Registered: segmentor ``SemiSupervisedSegmentor`` (methods supervised /
mean_teacher / reco / u2pl), losses ``ConfidenceWeightedCELoss`` / ``ReCoLoss`` /
``EntropyDropCELoss`` / ``U2PLContrastiveLoss``, networks ``ReCoNetwork`` / ``U2PLNetwork``,
hook ``MeanTeacherHook``, data sampler ``LabelledUnlabelledSampler``, data sets
``PascalVOCSplitDataset`` / ``CityscapesSplitDataset`` / ``SUNRGBDDataset`` and the
protocols' transforms (``transforms.py``)."""
from mmseg_plugins.semisup import (datasets, labelled_unlabelled_sampler,  # noqa: F401
                                   losses, mean_teacher_hook, networks, semi_segmentor,
                                   transforms)
