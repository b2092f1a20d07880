"""The ``vice`` converter source: ViCE's DeepLabV3+ trunk -> mmseg ResNet +
DepthwiseSeparableASPPHead (fine-tuning), and -> torchvision (backbone only)."""
import os.path as osp
import subprocess

import pytest
import torch
import torch.nn.functional as F
import torchvision
from vissl.config import AttrDict

from converters import ConversionError, ConversionRefused, convert
from vissl_plugins.vice.deeplabv3plus import DeepLabV3PlusTrunk

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
FINETUNE_CONFIG = osp.join(REPO, 'configs/mmseg/vice/deeplabv3plus_finetune_cityscapes.py')
SKIP = 48


@pytest.fixture(autouse=True)
def mmseg_scope():
    import mmseg_plugins  # noqa: F401  (compat: mmcv.ops stand-in)
    from mmengine.registry import init_default_scope
    init_default_scope('mmseg')


def _quiet(*args):
    pass


def _trunk(depth=18, rates=(1, 2, 3, 4), channels=16, seed=0, identity_bn=False):
    torch.manual_seed(seed)
    options = {'DEPTH': depth, 'ASPP_RATES': list(rates), 'DECODER_CHANNELS': channels}
    trunk = DeepLabV3PlusTrunk(AttrDict({'TRUNK': {'NAME': 'deeplabv3plus',
                                                   'DEEPLABV3PLUS': options}}), 'test')
    with torch.no_grad():
        for m in trunk.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                if identity_bn:
                    m.running_mean.zero_(), m.running_var.fill_(1), m.weight.fill_(1)
                    m.bias.zero_()
                else:
                    m.running_mean.uniform_(-1, 1), m.running_var.uniform_(0.5, 2)
                    m.weight.uniform_(0.5, 1.5), m.bias.normal_()
                m.num_batches_tracked.fill_(5)
    return trunk.eval()


def _save_vissl(trunk, path, drop=()):
    state = {k: v for k, v in trunk.state_dict().items() if k not in drop}
    torch.save({'type': 'consolidated', 'classy_state_dict': {
        'base_model': {'model': {'trunk': state,
                                 'heads': {'0.prototypes0.weight': torch.randn(128, 8)}}},
        'optimizer': {}}}, path)
    return str(path)


def _mmseg_model(depth=18, rates=(1, 2, 3, 4), channels=16, checkpoint=None):
    """The fine-tune config's model at this size; ``checkpoint``: the converted file its two
    init_cfgs (CheckedPretrained) load, None = random init."""
    from mmengine.config import Config
    from mmseg.registry import MODELS
    from mmseg_plugins.compat import adapt_config_for_device
    cfg = adapt_config_for_device(Config.fromfile(FINETUNE_CONFIG))
    wide = depth >= 50
    cfg.model.backbone.depth = depth
    cfg.model.decode_head.update(in_channels=2048 if wide else 512,
                                 c1_in_channels=256 if wide else 64, channels=channels,
                                 dilations=tuple(rates))
    if checkpoint is None:
        cfg.model.backbone.init_cfg = None
        cfg.model.decode_head.init_cfg = cfg.model.decode_head.init_cfg[1:]
    else:
        cfg.merge_from_dict({'model.backbone.init_cfg.checkpoint': checkpoint,
                             'model.decode_head.init_cfg.0.checkpoint': checkpoint})
    torch.manual_seed(1)
    model = MODELS.build(cfg.model)
    model.init_weights()
    return model.eval()


def _convert(trunk, tmp_path, dst_format='mmseg', **kwargs):
    src = _save_vissl(trunk, tmp_path / 'vice.torch')
    dst = str(tmp_path / f'out_{dst_format}.pth')
    report = convert(src, dst, 'vice', dst_format, log=_quiet, **kwargs)
    return report, dst


def _load_converted(model, dst):
    """Load the file into the whole model by hand (backbone keys carry no prefix in the
    file); returns the tensors under the model's names and the missing / unexpected keys."""
    state = torch.load(dst, map_location='cpu', weights_only=True)['state_dict']
    state = {(k if k.startswith('decode_head.') else f'backbone.{k}'): v
             for k, v in state.items()}
    result = model.load_state_dict(state, strict=False)
    return state, sorted(result.missing_keys), sorted(result.unexpected_keys)


@pytest.mark.parametrize('depth,rates,channels', [(18, (1, 2, 3, 4), 16),
                                                  (50, (1, 12, 24, 36), 256)])
def test_round_trip_loads_with_only_the_new_classifier_missing(depth, rates, channels, tmp_path):
    trunk = _trunk(depth, rates, channels)
    report, dst = _convert(trunk, tmp_path)
    assert report['status'] == 'written' and report['arch'] == f'resnet{depth}'
    assert not report['missing_keys'] and not report['unexpected_keys']
    model = _mmseg_model(depth, rates, channels)
    state, missing, unexpected = _load_converted(model, dst)
    assert missing == ['decode_head.conv_seg.bias', 'decode_head.conv_seg.weight']
    assert unexpected == []
    assert report['num_matched'] == len(state) == len(model.state_dict()) - 2
    assert sorted(report['dropped_keys']) == [
        'deeplabv3plus_head/decoder.projection.bias', 'deeplabv3plus_head/decoder.projection.weight',
        'heads.0.prototypes0.weight']
    # the config's path: the backbone's and the head's init_cfg (CheckedPretrained) read
    # the file, every key checked; only the new classifier keeps its own init
    loaded = _mmseg_model(depth, rates, channels, checkpoint=dst).state_dict()
    for key, value in state.items():
        assert torch.equal(loaded[key], value), key


def test_backbone_features_equal_where_the_structures_are_equal(tmp_path):
    x = torch.randn(2, 3, 48, 64)
    for depth, rates, channels in ((50, (1, 12, 24, 36), 32), (18, (1, 2, 3, 4), 16)):
        trunk = _trunk(depth, rates, channels, seed=depth)
        _, dst = _convert(trunk, tmp_path)
        model = _mmseg_model(depth, rates, channels)
        _load_converted(model, dst)
        backbone = trunk._feature_blocks['backbone']
        with torch.no_grad():
            ours = [backbone.maxpool(backbone.relu(backbone.bn1(backbone.conv1(x))))]
            for layer in (backbone.layer1, backbone.layer2, backbone.layer3, backbone.layer4):
                ours.append(layer(ours[-1]))
            theirs = model.backbone(x)
        for stage in range(4):
            same = torch.allclose(ours[stage + 1], theirs[stage], rtol=1e-4, atol=1e-4)
            if depth == 50 or stage < 2:
                assert same, (depth, stage)
            else:  # mmseg's BasicBlock dilates conv1 only; ViCE dilates both (reported)
                assert not same, (depth, stage)


def test_head_tensors_land_in_mmseg_order(tmp_path):
    """With identity BatchNorms ViCE's conv->ReLU->BN equals mmseg's conv->BN->ReLU, so the
    ASPP fuse conv and the decoder's separable convs must give the same outputs once the
    concatenation orders are translated; random BN statistics check the reordered depthwise BN."""
    rates, d = (1, 2, 3), 8
    trunk = _trunk(18, rates, d, identity_bn=True)
    _, dst = _convert(trunk, tmp_path)
    model = _mmseg_model(18, rates, d)
    _load_converted(model, dst)
    aspp, decoder = trunk._feature_blocks['aspp'], trunk._feature_blocks['decoder']
    head = model.decode_head
    res5, res2 = torch.randn(2, 512, 6, 8), torch.randn(2, 64, 12, 16)
    grabbed = {}
    hooks = [aspp.fuse_conv.register_forward_hook(lambda m, i, o: grabbed.__setitem__('ours', o)),
             head.bottleneck.conv.register_forward_hook(
                 lambda m, i, o: grabbed.__setitem__('mmseg', o))]
    with torch.no_grad():
        aspp(res5)
        head([res2, None, None, res5])
    for hook in hooks:
        hook.remove()
    torch.testing.assert_close(grabbed['mmseg'], grabbed['ours'])
    a, s = torch.randn(2, d, 12, 16), torch.randn(2, SKIP, 12, 16)
    with torch.no_grad():
        torch.testing.assert_close(head.sep_bottleneck(torch.cat([a, s], 1)),
                                   decoder.fuse(torch.cat([s, a], 1)))
        torch.testing.assert_close(head.c1_bottleneck(res2),
                                   F.relu(decoder.skip_bn(decoder.skip_conv(res2))))

    trunk = _trunk(18, rates, d, seed=3)  # random BN statistics
    _, dst = _convert(trunk, tmp_path)
    _load_converted(model, dst)
    ours_sep, theirs_sep = trunk._feature_blocks['decoder'].fuse[0], head.sep_bottleneck[0]
    with torch.no_grad():
        ours = ours_sep.depthwise_bn(ours_sep.depthwise_conv(torch.cat([s, a], 1)))
        theirs = theirs_sep.depthwise_conv.bn(theirs_sep.depthwise_conv.conv(torch.cat([a, s], 1)))
    torch.testing.assert_close(theirs, torch.cat([ours[:, SKIP:], ours[:, :SKIP]], 1))


def test_report_states_what_differs_and_what_is_dropped(tmp_path, python, cpu_env):
    trunk = _trunk()
    src = _save_vissl(trunk, tmp_path / 'vice.torch')
    dst = tmp_path / 'cli.pth'
    run = subprocess.run([python, osp.join(REPO, 'tools/convert_checkpoint.py'), src, str(dst),
                          '--src-format', 'vice', '--dst-format', 'mmseg'],
                         cwd=REPO, capture_output=True, text=True, timeout=300, env=cpu_env)
    assert run.returncode == 0, run.stderr
    out = run.stdout
    assert 'status: written' in out and 'missing (0)' in out and 'unexpected (0)' in out
    assert 'conv -> ReLU -> BN' in out and 'conv -> BN -> ReLU' in out
    assert 'adds a ReLU after its BN' in out
    assert 'decoder.projection' in out and 'conv_seg' in out and 'initialised by mmseg' in out
    assert 'dilates conv1 only' in out  # depth 18
    meta = torch.load(dst, weights_only=True)['meta']
    assert meta['source_format'] == 'vice'
    assert 'deeplabv3plus_head/decoder.projection.weight' in meta['dropped_keys']


def test_missing_head_key_is_refused_unless_allowed(tmp_path):
    trunk = _trunk()
    key = '_feature_blocks.aspp.branches.1.depthwise_bn.running_var'
    src = _save_vissl(trunk, tmp_path / 'vice.torch', drop=[key])
    dst = tmp_path / 'out.pth'
    with pytest.raises(ConversionRefused, match=r'1 missing keys: decode_head\.aspp_modules\.1\.'
                                                r'depthwise_conv\.bn\.running_var'):
        convert(src, str(dst), 'vice', 'mmseg', log=_quiet)
    assert not dst.exists()
    report = convert(src, str(dst), 'vice', 'mmseg', allow_missing=True, log=_quiet)
    assert report['status'] == 'written_with_warnings' and dst.exists()


def test_wrong_head_shape_is_refused(tmp_path):
    trunk = _trunk()
    state = trunk.state_dict()
    state['_feature_blocks.decoder.skip_conv.weight'] = torch.zeros(48, 32, 1, 1)
    torch.save({'trunk': state}, tmp_path / 'bad.torch')
    with pytest.raises(ConversionRefused, match=r'c1_bottleneck\.conv\.weight: source '
                                                r'\(48, 32, 1, 1\) vs expected \(48, 64, 1, 1\)'):
        convert(str(tmp_path / 'bad.torch'), str(tmp_path / 'o.pth'), 'vice', 'mmseg',
                log=_quiet)


def test_to_torchvision_keeps_the_backbone_and_drops_the_head(tmp_path):
    trunk = _trunk()
    report, dst = _convert(trunk, tmp_path, dst_format='torchvision')
    assert report['status'] == 'written'
    assert sum(k.startswith('deeplabv3plus_head/') for k in report['dropped_keys']) == len(
        [k for k in trunk.state_dict() if '.aspp.' in k or '.decoder.' in k])
    net = torchvision.models.resnet18(weights=None)
    net.fc = torch.nn.Identity()
    net.load_state_dict(torch.load(dst, weights_only=True), strict=True)
    assert torch.equal(net.layer4[1].bn2.running_mean,
                       trunk._feature_blocks['backbone'].layer4[1].bn2.running_mean)


def test_a_plain_resnet_checkpoint_is_not_a_vice_trunk(tmp_path):
    state = {'_feature_blocks.' + k: v
             for k, v in torchvision.models.resnet18(weights=None).state_dict().items()
             if not k.startswith('fc.')}
    torch.save({'trunk': state}, tmp_path / 'r18.torch')
    with pytest.raises(ConversionError, match=r'no ViCE deeplabv3plus trunk keys.*use '
                                              r'--src-format vissl'):
        convert(str(tmp_path / 'r18.torch'), str(tmp_path / 'o.pth'), 'vice', 'mmseg',
                log=_quiet)
