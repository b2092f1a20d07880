"""Reading image files with errors that name the file and say what to do.

VISSL's disk data sources replace an unreadable image silently by another one; we fail
instead, so that a broken data set is found at once and not after a day of training.
"""
import os.path as osp

from PIL import Image, UnidentifiedImageError

IMAGE_EXTENSIONS = ('.png', '.jpg', '.jpeg', '.bmp', '.webp', '.tif', '.tiff')


class ImageFileError(RuntimeError):
    """An image file is missing or cannot be decoded."""


def load_rgb_image(path):
    """Decode ``path`` fully and return an RGB ``PIL.Image`` (grey / RGBA are converted)."""
    if not osp.isfile(path):
        raise ImageFileError(f'image file not found: {path}. Re-create the data set or '
                             f'regenerate its file list.')
    try:
        with Image.open(path) as img:
            img.load()
            return img.convert('RGB')
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        raise ImageFileError(f'cannot decode image file {path} ({e}). The file is corrupt '
                             f'or truncated: replace it, or remove it from the data set.') from e
