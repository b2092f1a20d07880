"""Tasks: the registry (``register_task``, ``TASKS``, ``get_task_class``), the ``Task``
base class, and one module per family, imported here so that their tasks register:

- ``image_classification``: Imagenet, Pets, CalTech-101, CIFAR-100, SUN397, Eurosat, dtd
- ``pixel_semantic``: CityscapesSemanticSegmentation, Pets-Detection, EgoHands
- ``pixel_structural``: NYUDepth, NYUWalkable
- ``synthetic``: SyntheticCarCount, SyntheticScenesSegmentation (built in, no download)

``augment`` holds the pixelwise tasks' train augmentation (``PixelAugmentation``).
"""
from virb.tasks.base import Task
from virb.tasks.registry import TASKS, get_task_class, register_task
from virb.tasks import image_classification, pixel_semantic, pixel_structural, synthetic  # noqa: E402,F401,I001

__all__ = ['Task', 'TASKS', 'register_task', 'get_task_class']
