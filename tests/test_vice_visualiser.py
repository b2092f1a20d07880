"""densessl.embedding_maps (PCA-to-RGB, k-means) and tools/visualize_vice_embeddings.py."""
import importlib.util
import os
import os.path as osp
import subprocess

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import yaml
from PIL import Image

from densessl import embedding_maps

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
TOOL = osp.join(REPO, 'tools', 'visualize_vice_embeddings.py')
TINY_TRUNK = {'DEPTH': 18, 'DECODER_CHANNELS': 16, 'ASPP_RATES': [1, 2, 3]}
GAP = 4


def _load_tool():
    spec = importlib.util.spec_from_file_location('visualize_vice_embeddings', TOOL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _two_region_map(dim=8, height=16, width=20, split=12, noise=0.05, seed=0):
    """Unit vectors near e_0 in columns < split, near e_1 elsewhere: (dim, height, width)."""
    g = torch.Generator().manual_seed(seed)
    z = noise * torch.randn(dim, height, width, generator=g)
    z[0, :, :split] += 1
    z[1, :, split:] += 1
    return F.normalize(z, dim=0)


# ---- PCA-to-RGB ------------------------------------------------------------------------------

def test_pca_finds_the_dominant_direction():
    g = torch.Generator().manual_seed(0)
    direction = F.normalize(torch.randn(16, generator=g), dim=0)
    direction = -direction * direction[direction.abs().argmax()].sign()  # largest entry < 0
    amplitude = torch.rand(24, 24, generator=g) * 2 - 1
    z = direction[:, None, None] * amplitude + 0.01 * torch.randn(16, 24, 24, generator=g)
    pca = embedding_maps.EmbeddingPCA([z])
    # sign convention: each component's largest-|.| entry is positive, so with the largest
    # entry of ``direction`` made negative, the first component is -direction
    assert float(pca.components[0].float() @ direction) < -0.99
    peaks = pca.components.abs().argmax(dim=1)
    assert (pca.components[torch.arange(3), peaks] > 0).all()
    assert pca.explained_variance_ratio[0] > 0.95
    rgb = pca.to_rgb(z)
    assert rgb.shape == (24, 24, 3) and rgb.dtype == np.float32
    assert rgb.min() >= 0 and rgb.max() <= 1
    # red follows the amplitude along the dominant direction (sign is fixed, not arbitrary)
    red = rgb[..., 0].ravel()
    corr = np.corrcoef(red, amplitude.numpy().ravel())[0, 1]
    assert abs(corr) > 0.99
    # percentile scaling: about 1% of the pixels at each end are clipped
    assert 0.005 < (red == 0).mean() < 0.03 and 0.005 < (red == 1).mean() < 0.03
    # deterministic sign: z and -z have the same covariance, so the same components (not
    # flipped by eigh's arbitrary sign); the scores, hence the colours, are reversed
    flipped = embedding_maps.EmbeddingPCA([-z])
    torch.testing.assert_close(flipped.components, pca.components)
    assert np.corrcoef(flipped.to_rgb(-z)[..., 0].ravel(), red)[0, 1] < -0.99


def test_pca_is_fitted_jointly_so_colours_compare_across_images():
    first = _two_region_map(split=20)          # every pixel near e_0
    second = _two_region_map(split=0, seed=1)  # every pixel near e_1
    pca = embedding_maps.EmbeddingPCA([first, second])
    a, b = pca.to_rgb(first).reshape(-1, 3).mean(0), pca.to_rgb(second).reshape(-1, 3).mean(0)
    assert np.abs(a - b).max() > 0.8  # the two images get clearly different colours
    # fitted on one image alone, that image spans the whole range instead
    alone = embedding_maps.EmbeddingPCA([first]).to_rgb(first)
    assert alone.std() > 0.1


def test_pca_bad_input():
    with pytest.raises(ValueError, match='no embedding maps'):
        embedding_maps.EmbeddingPCA([])
    with pytest.raises(ValueError, match=r'map 1: expected a \(D, H, W\) tensor, got \(4, 5\)'):
        embedding_maps.EmbeddingPCA([torch.randn(4, 5, 5), torch.randn(4, 5)])
    with pytest.raises(ValueError, match=r'different channel counts \[4, 6\]'):
        embedding_maps.EmbeddingPCA([torch.randn(4, 5, 5), torch.randn(6, 5, 5)])
    with pytest.raises(ValueError, match='at least 3 channels'):
        embedding_maps.EmbeddingPCA([torch.randn(2, 5, 5)])
    with pytest.raises(ValueError, match='percentiles'):
        embedding_maps.EmbeddingPCA([torch.randn(4, 5, 5)], percentiles=(60, 40))


# ---- k-means ---------------------------------------------------------------------------------

def test_two_separated_clusters_give_two_colours():
    z = _two_region_map(split=12)  # 12 columns near e_0 (larger), 8 near e_1
    centroids = embedding_maps.fit_kmeans(embedding_maps.pixels_of(z), k=2, seed=0)
    labels = embedding_maps.cluster_map(z, centroids)
    assert labels.shape == (16, 20)
    assert (labels[:, :12] == 0).all() and (labels[:, 12:] == 1).all()  # largest first
    palette = embedding_maps.cluster_palette(2)
    image = embedding_maps.colour_clusters(labels, palette)
    assert image.shape == (16, 20, 3) and image.dtype == np.uint8
    colours = np.unique(image.reshape(-1, 3), axis=0)
    assert len(colours) == 2
    assert (image[:, :12] == palette[0]).all() and (image[:, 12:] == palette[1]).all()
    # the PCA colouring separates the two regions too
    rgb = embedding_maps.EmbeddingPCA([z]).to_rgb(z)
    assert np.abs(rgb[:, :12].mean((0, 1)) - rgb[:, 12:].mean((0, 1))).max() > 0.8


def test_kmeans_recovers_blob_centres_deterministically():
    g = torch.Generator().manual_seed(3)
    centres = torch.tensor([[5.0, 0, 0], [0, 5.0, 0], [0, 0, 5.0]])
    sizes = [300, 200, 100]
    points = torch.cat([c + 0.3 * torch.randn(n, 3, generator=g) for c, n in zip(centres, sizes)])
    points = points[torch.randperm(len(points), generator=g)]
    fitted = embedding_maps.fit_kmeans(points, k=3, seed=7)
    torch.testing.assert_close(fitted, centres, atol=0.1, rtol=0)  # ordered by size
    assert torch.equal(fitted, embedding_maps.fit_kmeans(points, k=3, seed=7))
    counts = torch.bincount(embedding_maps.assign_clusters(points, fitted), minlength=3)
    assert counts.tolist() == sizes


def test_kmeans_with_more_clusters_than_distinct_points_and_bad_input():
    points = torch.tensor([[0.0, 1.0]] * 5 + [[1.0, 0.0]] * 3)
    fitted = embedding_maps.fit_kmeans(points, k=4, seed=0)
    labels = embedding_maps.assign_clusters(points, fitted)
    assert set(labels[:5].tolist()) == {0} and set(labels[5:].tolist()) == {1}
    with pytest.raises(ValueError, match=r'k=9 must be between 1 and the number of points \(8\)'):
        embedding_maps.fit_kmeans(points, k=9)
    with pytest.raises(ValueError, match=r'expected a \(P, D\) tensor'):
        embedding_maps.fit_kmeans(torch.zeros(2, 3, 4), k=2)


def test_sample_pixels_and_palette():
    maps = [torch.randn(5, 4, 6), torch.randn(5, 3, 3)]
    assert embedding_maps.sample_pixels(maps, 100).shape == (33, 5)
    sample = embedding_maps.sample_pixels(maps, 10, seed=1)
    assert sample.shape == (10, 5)
    assert torch.equal(sample, embedding_maps.sample_pixels(maps, 10, seed=1))
    pooled = torch.cat([embedding_maps.pixels_of(m) for m in maps])
    assert all((pooled == row).all(1).any() for row in sample)
    palette = embedding_maps.cluster_palette(20)
    assert palette.shape == (20, 3) and palette.dtype == np.uint8
    assert len(np.unique(palette, axis=0)) == 20
    assert np.array_equal(embedding_maps.cluster_palette(8), palette[:8])


# ---- the tool --------------------------------------------------------------------------------

@pytest.fixture
def tiny_inputs(tmp_path):
    """Two 64x64 images, a VISSL YAML of a depth-18 trunk (128-d output)."""
    images = tmp_path / 'images'
    images.mkdir()
    rng = np.random.default_rng(0)
    for i in range(2):
        img = np.zeros((64, 64, 3), np.uint8)
        img[:, :32] = (200, 40, 30)
        img[:, 32:] = (30, 60, 200)
        img[16 + 8 * i:40, 16:48] = rng.integers(0, 256, (24 - 8 * i, 32, 3))
        Image.fromarray(img).save(images / f'scene_{i}.png')
    (images / 'notes.txt').write_text('not an image')
    config = tmp_path / 'vice_tiny.yaml'
    config.write_text(yaml.safe_dump({'config': {'MODEL': {
        'TRUNK': {'NAME': 'deeplabv3plus', 'DEEPLABV3PLUS': dict(TINY_TRUNK)}}}}))
    return str(images), str(config)


def _read(path):
    with Image.open(path) as img:
        return np.array(img.convert('RGB'))


def test_tool_run_writes_three_panel_pngs(tiny_inputs, tmp_path, python, cpu_env):
    images, config = tiny_inputs
    out = tmp_path / 'viz'
    result = subprocess.run(
        [python, TOOL, images, '--config', config, '--random-init', '--out', str(out),
         '--size', '64', '--k', '5', '--num-images', '2'],
        cwd=str(tmp_path), env=cpu_env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert 'randomly initialised' in result.stdout + result.stderr
    assert sorted(os.listdir(out)) == ['000_scene_0.png', '001_scene_1.png', 'index.html']
    palette = embedding_maps.cluster_palette(5)
    for i in range(2):
        figure = _read(out / f'00{i}_scene_{i}.png')
        assert figure.shape == (64, 3 * 64 + 2 * GAP, 3)
        assert np.array_equal(figure[:, :64], _read(osp.join(images, f'scene_{i}.png')))
        assert (figure[:, 64:64 + GAP] == 255).all()
        pca_panel = figure[:, 64 + GAP:128 + GAP].reshape(-1, 3)
        assert len(np.unique(pca_panel, axis=0)) > 50  # a continuous colouring
        clusters = figure[:, 128 + 2 * GAP:].reshape(-1, 3)
        used = np.unique(clusters, axis=0)
        assert 2 <= len(used) <= 5 and all((palette == c).all(1).any() for c in used)
    page = (out / 'index.html').read_text()
    assert 'src="000_scene_0.png"' in page and 'src="001_scene_1.png"' in page
    assert 'none (--random-init)' in page


def test_tool_loads_the_checkpoint(tiny_inputs, tmp_path):
    """--checkpoint is really used: the trunk saved from a seed-5 random init reproduces the
    PCA panel of --random-init --seed 5, unlike --random-init --seed 0."""
    from mmseg_plugins.vice.vice_backbone import ViCEBackbone
    tool = _load_tool()
    images, config = tiny_inputs
    torch.manual_seed(5)
    trunk = ViCEBackbone(vissl_config=config).trunk
    ckpt = tmp_path / 'exported.torch'
    torch.save({'trunk': trunk.state_dict()}, ckpt)
    common = [images, '--config', config, '--size', '48', '--num-images', '1']
    runs = {'ckpt': ['--checkpoint', str(ckpt)], 'seed5': ['--random-init', '--seed', '5'],
            'seed0': ['--random-init', '--seed', '0']}
    panels = {}
    for name, extra in runs.items():
        tool.main(common + extra + ['--out', str(tmp_path / name)])
        figure = _read(tmp_path / name / '000_scene_0.png')
        assert figure.shape == (48, 3 * 48 + 2 * GAP, 3)
        panels[name] = figure[:, 48 + GAP:96 + GAP]
    assert np.array_equal(panels['ckpt'], panels['seed5'])
    assert not np.array_equal(panels['ckpt'], panels['seed0'])


def _error(tool, argv):
    with pytest.raises(SystemExit) as info:
        tool.main(argv)
    return str(info.value)


def test_tool_bad_paths_and_options(tiny_inputs, tmp_path, capsys):
    tool = _load_tool()
    images, config = tiny_inputs
    out = ['--out', str(tmp_path / 'out')]
    run = [images, '--config', config, '--random-init'] + out
    missing = str(tmp_path / 'missing')
    assert f'{missing}: no such file or folder' in _error(
        tool, [missing, '--config', config, '--random-init'] + out)
    pattern = osp.join(images, '*.jpg')
    assert 'the pattern matches no image file' in _error(
        tool, [pattern, '--config', config, '--random-init'] + out)
    empty = tmp_path / 'empty'
    empty.mkdir()
    assert 'no image files' in _error(tool, [str(empty), '--config', config,
                                             '--random-init'] + out)
    broken = tmp_path / 'broken.png'
    broken.write_bytes(b'not a png')
    assert 'broken.png: cannot be read as an image' in _error(
        tool, [str(broken), '--config', config, '--random-init'] + out)
    assert '--config' in _error(tool, [images, '--config', str(tmp_path / 'no.yaml'),
                                       '--random-init'] + out)
    assert 'no such file' in _error(tool, [images, '--config', str(tmp_path / 'no.yaml'),
                                           '--random-init'] + out)
    message = _error(tool, [images, '--config', config, '--checkpoint',
                            str(tmp_path / 'no.torch')] + out)
    assert 'no.torch: no such file' in message and '--random-init' in message
    # a checkpoint of another trunk: the backbone's key / shape check, passed through
    from mmseg_plugins.vice.vice_backbone import ViCEBackbone
    other = ViCEBackbone(trunk=dict(depth=18, decoder_channels=8, aspp_rates=[1, 2, 3])).trunk
    torch.save({'trunk': other.state_dict()}, tmp_path / 'other.torch')
    message = _error(tool, [images, '--config', config, '--checkpoint',
                            str(tmp_path / 'other.torch')] + out)
    assert 'does not match the trunk' in message and 'shape mismatches' in message
    # neither --checkpoint nor --random-init, bad numbers: argparse errors (exit code 2)
    for argv in ([images, '--config', config] + out, run + ['--k', '0'],
                 run + ['--size', '-3']):
        with pytest.raises(SystemExit) as info:
            tool.main(argv)
        assert info.value.code == 2
    assert '--k=0 must be >= 1' in capsys.readouterr().err
    assert '--device cuda' in _error(tool, run + ['--device', 'cuda']) or \
        torch.cuda.is_available()
    assert not (tmp_path / 'out').exists()  # nothing written on errors
