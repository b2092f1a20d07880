from mmseg_plugins.datasets.checked_loading import (LoadAnnotationsChecked,  # noqa: F401
                                                    LoadImageFromFileChecked)
from mmseg_plugins.datasets.coco_stuff_coarse import COCOStuffCoarseDataset  # noqa: F401
from mmseg_plugins.datasets.synthetic_scenes import SyntheticScenesDataset  # noqa: F401
