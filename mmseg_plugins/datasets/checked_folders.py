"""Folder checks shared by densessl's MMSeg data sets, before mmseg lists any file.

A missing data root, a missing image (or label) folder, or an image folder without images
gives one ``DatasetNotFoundError`` that names the folder and says how to create the data set
(mmseg itself would fail later with a bare ``FileNotFoundError`` or train on nothing).
"""
import os.path as osp


class DatasetNotFoundError(FileNotFoundError):
    """The data set folder is missing or holds no images."""


class CheckedFoldersMixin:
    """Put before ``BaseSegDataset``. Subclasses define ``how_to_create(root)`` (root: the
    configured ``data_root``, may be empty) and may add folders in ``required_folders()``."""

    def how_to_create(self, root):
        raise NotImplementedError

    def required_folders(self):
        """(name, path) pairs that must exist, checked in order after the data root."""
        return [('image folder', self.data_prefix.get('img_path', ''))]

    def not_found(self, what):
        return DatasetNotFoundError(
            f'{type(self).__name__}: {what}. {self.how_to_create(self.data_root)} (or set '
            f'data_root in the config / with --cfg-options).')

    def load_data_list(self):
        root = self.data_root or ''
        if root and not osp.isdir(root):
            raise self.not_found(f'data root {osp.abspath(root)} does not exist')
        for name, folder in self.required_folders():
            if not osp.isdir(folder):
                raise self.not_found(f'{name} {osp.abspath(folder)} does not exist (an '
                                     f'incomplete data set?)')
        data_list = super().load_data_list()
        if not data_list:
            img_dir = self.data_prefix.get('img_path', '')
            raise self.not_found(f'no *{self.img_suffix} images under {osp.abspath(img_dir)}')
        return data_list
