"""Readers: a checkpoint file -> (canonical torchvision ResNet state dict, dropped keys).

Add a format by writing ``read_<format>(path) -> (state_dict, dropped)`` and listing it here.
"""
from converters.readers.torchvision_reader import read_torchvision
from converters.readers.vissl_reader import read_vissl

READERS = {'vissl': read_vissl, 'torchvision': read_torchvision}
