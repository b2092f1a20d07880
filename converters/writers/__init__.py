"""Writers: canonical torchvision ResNet state dict -> the object saved for a target format.

Add a format by writing ``to_<format>(state_dict, meta) -> object`` and listing it here.
"""
from converters.writers.mmseg_writer import to_mmseg
from converters.writers.torchvision_writer import to_torchvision

WRITERS = {'mmseg': to_mmseg, 'torchvision': to_torchvision}
