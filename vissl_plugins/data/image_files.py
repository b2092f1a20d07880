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


def source_image_name(source, index):
    """The file behind VISSL data source ``source[index]`` where it knows it, for messages."""
    paths = getattr(source, 'image_paths', None)
    if paths is None:
        paths = getattr(source, 'image_dataset', None)
        paths = getattr(paths, 'samples', paths)  # disk_folder: ImageFolder.samples
    try:
        entry = paths[index]
        return str(entry[0] if isinstance(entry, tuple) else entry)
    except (TypeError, IndexError, KeyError):
        return f'{type(source).__name__}[{index}]'


def read_source_image(dataset, idx, dataset_type):
    """``(PIL RGB image, file name)`` of sample ``idx`` of a one-source GenericSSLDataset.

    ``DATA_LIMIT`` subsets are applied as VISSL does. VISSL's disk sources replace an unreadable
    image by a grey one and report ``valid = False``; that is an :class:`ImageFileError` naming
    the file here. ``dataset_type`` names the caller in messages.
    """
    subset_idx = idx
    if dataset.data_limit >= 0 and dataset._can_random_subset_data_sources():
        if not dataset._subset_initialized:
            dataset._init_image_and_label_subset()
        subset_idx = int(dataset.image_and_label_subset[idx])
    source, source_name = dataset.data_objs[0], dataset.data_sources[0]
    image, valid = source[subset_idx]
    name = source_image_name(source, subset_idx)
    if not valid:
        raise ImageFileError(f'data source {source_name} could not load image {name} '
                             f'(sample {idx}): the file is missing or corrupt. Replace it or '
                             f'remove it from the data set / file list.')
    if not isinstance(image, Image.Image):
        raise TypeError(f'data source {source_name} returned {type(image).__name__} '
                        f'for {name}; {dataset_type} needs PIL images')
    return (image if image.mode == 'RGB' else image.convert('RGB')), name
