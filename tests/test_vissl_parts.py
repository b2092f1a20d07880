"""The registered VISSL parts: trunk, data source."""
import pytest
import torch
import torchvision
from vissl.config import AttrDict

import vissl_plugins  # noqa: F401
from vissl_plugins.data.image_files import ImageFileError
from vissl_plugins.data.synthetic_scenes_source import SyntheticScenesSource
from vissl_plugins.trunks.torchvision_resnet import TorchvisionResNet


def _trunk(depth):
    config = AttrDict({'TRUNK': {'TORCHVISION_RESNET': {'DEPTH': depth,
                                                        'ZERO_INIT_RESIDUAL': False}}})
    return TorchvisionResNet(config, 'test')


@pytest.mark.parametrize('depth,channels', [(18, 512), (50, 2048)])
def test_trunk_shapes_and_torchvision_names(depth, channels):
    trunk = _trunk(depth).eval()
    x = torch.randn(2, 3, 64, 96)
    res4, res5avg = trunk(x, out_feat_keys=['res4', 'res5avg'])
    assert res4.shape == (2, channels // 2, 4, 6)
    assert res5avg.shape == (2, channels, 1, 1)
    ours = {k.replace('_feature_blocks.', '') for k in trunk.state_dict()}
    reference = getattr(torchvision.models, f'resnet{depth}')(weights=None).state_dict()
    assert ours == {k for k in reference if not k.startswith('fc.')}


def test_trunk_rejects_unknown_depth():
    with pytest.raises(ValueError, match='DEPTH=19'):
        _trunk(19)


def test_data_source_reads_the_unlabelled_pool(tiny_scenes):
    source = SyntheticScenesSource(cfg=None, path=tiny_scenes, split='TRAIN',
                                   dataset_name='synthetic_scenes')
    assert len(source) == 16
    img, ok = source[3]
    assert ok and img.mode == 'RGB' and img.size == (128, 64)
    assert len(SyntheticScenesSource(None, tiny_scenes, 'TEST', 'x')) == 4


def test_data_source_missing_root_says_how_to_generate(tmp_path):
    with pytest.raises(FileNotFoundError, match='gen_synthetic_scenes.py --out'):
        SyntheticScenesSource(None, str(tmp_path / 'nowhere'), 'TRAIN', 'synthetic_scenes')


def test_corrupt_image_is_an_error_naming_the_file(tiny_scenes, tmp_path):
    import shutil
    root = tmp_path / 'copy'
    shutil.copytree(tiny_scenes, root)
    source = SyntheticScenesSource(None, str(root), 'TRAIN', 'synthetic_scenes')
    victim = source.image_paths[2]
    data = open(victim, 'rb').read()
    open(victim, 'wb').write(data[:len(data) // 3])  # truncated PNG
    with pytest.raises(ImageFileError, match=f'{victim}.*corrupt'):
        source[2]
