from mmseg_plugins.backbones.frozen_resnet import FrozenResNet  # noqa: F401
