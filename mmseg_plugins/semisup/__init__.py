"""Semi-supervised segmentation in MMSeg 1.x (ReCo, U2PL): thin registered parts around
``densessl.semisup``. Registered: data sampler ``LabelledUnlabelledSampler``, segmentor
``SemiSupervisedSegmentor`` (methods supervised / mean_teacher / reco), hook
``MeanTeacherHook``, networks ``ReCoNetwork`` / ``U2PLNetwork``."""
from mmseg_plugins.semisup import (labelled_unlabelled_sampler,  # noqa: F401  (registration)
                                   mean_teacher_hook, networks, semi_segmentor)
from mmseg_plugins.semisup import datasets, transforms  # noqa: F401  (registration)
