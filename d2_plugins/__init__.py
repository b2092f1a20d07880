"""densessl's detectron2 plugins (detectron2 is optional: ``d2_plugins.availability``).

Importing the package applies the framework fixes (``d2_plugins.compat``) and registers:

* ROI heads ``Res5ROIHeadsExtraNorm`` (MoCo's C4 head, ``d2_plugins.roi_heads``);
* data sets ``synthetic_scenes_train`` / ``synthetic_scenes_val`` (the built-in scenes'
  car / person / pole instances as COCO JSON, ``d2_plugins.datasets``);
* ``CheckedDetectionCheckpointer`` (``d2_plugins.checked_checkpointer``), which every load of
  ``MODEL.WEIGHTS`` goes through.

The entry point is ``tools/d2_train_net.py`` (detectron2's train_net with these parts);
configs are in ``configs/d2/``. Nothing here imports VISSL or MMSeg.
"""
from d2_plugins.availability import require_detectron2

require_detectron2()

from d2_plugins import compat  # noqa: E402

compat.apply()

from d2_plugins import datasets, roi_heads  # noqa: E402,F401  (registration)
from d2_plugins.checked_checkpointer import CheckedDetectionCheckpointer  # noqa: E402,F401
