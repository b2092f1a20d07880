"""Reading checkpoint files with errors that name the file."""
import os.path as osp

import torch


class ConversionError(RuntimeError):
    """A checkpoint cannot be converted; the message says why and what to do."""


def load_checkpoint_file(path, trusted_pickle=False):
    """torch.load with weights_only=True; ``trusted_pickle`` allows other pickled objects
    (SlotCon / MoCo checkpoints pickle argparse.Namespace) and prints a note saying so."""
    if not osp.isfile(path):
        raise ConversionError(f'input checkpoint not found: {path}')
    try:
        return torch.load(path, map_location='cpu', weights_only=not trusted_pickle)
    except Exception as e:
        raise ConversionError(f'cannot read {path} as a PyTorch checkpoint ({type(e).__name__}: '
                              f'{str(e).splitlines()[0][:200]}). Is the file complete and of the '
                              f'format given by --src-format?') from e
