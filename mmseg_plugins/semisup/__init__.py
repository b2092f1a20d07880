"""Semi-supervised segmentation in MMSeg 1.x (ReCo, U2PL): thin registered parts around
``densessl.semisup``. Registered: data sampler ``LabelledUnlabelledSampler``."""
from mmseg_plugins.semisup import labelled_unlabelled_sampler  # noqa: F401  (registration)
