from vissl_plugins.trunks.torchvision_resnet import TorchvisionResNet  # noqa: F401
