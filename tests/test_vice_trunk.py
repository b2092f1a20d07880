"""ViCE's DeepLabV3+ network (densessl/vice/deeplabv3plus.py) and its VISSL trunk against spec 1(a) B."""
import math

import pytest
import torch
import torch.nn.functional as F
import torchvision
from vissl.config import AttrDict
from vissl.models.trunks import MODEL_TRUNKS_REGISTRY

from densessl.vice.deeplabv3plus import DeepLabV3Plus, PretrainedWeightsError
from vissl_plugins.vice.deeplabv3plus import DeepLabV3PlusTrunk


def _trunk(**options):
    config = AttrDict({'TRUNK': {'NAME': 'deeplabv3plus', 'DEEPLABV3PLUS': options}})
    return DeepLabV3PlusTrunk(config, 'test')


def _randomise_bn(model, seed=0):
    """Non-trivial BN statistics and affine parameters, so that orderings are visible."""
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            n = m.num_features
            m.running_mean.copy_(torch.randn(n, generator=g))
            m.running_var.copy_(torch.rand(n, generator=g) + 0.5)
            m.weight.data.copy_(torch.randn(n, generator=g))
            m.bias.data.copy_(torch.randn(n, generator=g))
    return model.eval()


def _bn(x, bn):
    return F.batch_norm(x, bn.running_mean, bn.running_var, bn.weight, bn.bias, False, 0., bn.eps)


def _separable_reference(x, m, dilation):
    """Spec: depthwise conv -> ReLU -> BN -> pointwise conv -> ReLU -> BN."""
    x = F.conv2d(x, m.depthwise_conv.weight, padding=dilation, dilation=dilation,
                 groups=x.shape[1])
    x = _bn(F.relu(x), m.depthwise_bn)
    return _bn(F.relu(F.conv2d(x, m.pointwise_conv.weight)), m.pointwise_bn)


def _aspp_reference(x, aspp, rates):
    """Spec: [1x1 conv+BN+ReLU, separable(r) for r in rates[1:], image pool]; 3x3 conv + BN."""
    b0 = aspp.branches[0]
    outs = [F.relu(_bn(F.conv2d(x, b0.conv.weight), b0.bn))]
    for branch, r in zip(aspp.branches[1:], rates[1:]):
        outs.append(_separable_reference(x, branch, r))
    pooled = F.adaptive_avg_pool2d(x, 1)
    pooled = F.relu(_bn(F.conv2d(pooled, aspp.image_pool.conv.weight), aspp.image_pool.bn))
    outs.append(F.interpolate(pooled, size=x.shape[2:], mode='bilinear', align_corners=True))
    return _bn(F.conv2d(torch.cat(outs, 1), aspp.fuse_conv.weight, padding=1), aspp.fuse_bn)


def _decoder_reference(x, skip, decoder):
    skip = F.relu(_bn(F.conv2d(skip, decoder.skip_conv.weight), decoder.skip_bn))
    x = F.interpolate(x, size=skip.shape[2:], mode='bilinear', align_corners=True)
    x = torch.cat([skip, x], 1)
    for sep in decoder.fuse:
        x = _separable_reference(x, sep, 1)
    return F.conv2d(x, decoder.projection.weight, decoder.projection.bias)


def test_registered_with_vissl():
    assert MODEL_TRUNKS_REGISTRY['deeplabv3plus'] is DeepLabV3PlusTrunk


@pytest.mark.parametrize('depth,output_stride,c2,c5', [(18, 8, 64, 512), (18, 16, 64, 512),
                                                        (50, 8, 256, 2048), (50, 16, 256, 2048)])
def test_output_at_input_resolution(depth, output_stride, c2, c5):
    torch.manual_seed(0)
    trunk = _trunk(DEPTH=depth, OUTPUT_STRIDE=output_stride).eval()
    x = torch.randn(2, 3, 48, 64)
    with torch.no_grad():
        out, res2, res5, aspp = trunk(x, out_feat_keys=['out', 'res2', 'res5', 'aspp'])
        default = trunk(x)
    assert out.shape == (2, 128, 48, 64)
    assert res2.shape == (2, c2, 12, 16)
    assert res5.shape == (2, c5, 48 // output_stride, 64 // output_stride)
    assert aspp.shape == (2, 256, 48 // output_stride, 64 // output_stride)
    assert len(default) == 1 and torch.equal(default[0], out)


@pytest.mark.parametrize('depth', [18, 50])
def test_dilation_and_stride_of_layer3_and_layer4(depth):
    for output_stride, dilations in ((8, {'layer3': 2, 'layer4': 4}), (16, {'layer4': 2})):
        backbone = _trunk(DEPTH=depth, OUTPUT_STRIDE=output_stride)._feature_blocks['backbone']
        for layer in ('layer1', 'layer2', 'layer3', 'layer4'):
            d = dilations.get(layer, 1)
            convs3 = [m for m in getattr(backbone, layer).modules()
                      if isinstance(m, torch.nn.Conv2d) and m.kernel_size == (3, 3)]
            # basic blocks: both 3x3 convs; bottlenecks: conv2; in every block
            assert len(convs3) == len(getattr(backbone, layer)) * (2 if depth < 50 else 1)
            for conv in convs3:
                assert conv.dilation == (d, d) and conv.padding == (d, d)
                if d > 1:
                    assert conv.stride == (1, 1)
            if d > 1:
                assert getattr(backbone, layer)[0].downsample[0].stride == (1, 1)
        assert backbone.layer2[0].downsample[0].stride == (2, 2)


def test_aspp_and_decoder_match_the_spec_reference():
    """Separable convs conv -> ReLU -> BN, no ReLU after the fused BN, concat orders,
    align_corners=True: the module equals a functional reference written from the spec."""
    torch.manual_seed(1)
    trunk = _randomise_bn(_trunk(DEPTH=18, OUTPUT_STRIDE=8, ASPP_RATES=[1, 2, 3, 4],
                                 DECODER_CHANNELS=16, OUT_FEAT_DIM=8))
    blocks = trunk._feature_blocks
    x = torch.randn(2, 3, 40, 48)
    with torch.no_grad():
        res5, res2 = blocks['backbone'](x)
        aspp = blocks['aspp'](res5)
        expected_aspp = _aspp_reference(res5, blocks['aspp'], [1, 2, 3, 4])
        torch.testing.assert_close(aspp, expected_aspp, rtol=1e-4, atol=1e-5)
        assert (aspp < 0).float().mean() > 0.2  # no ReLU after the fused BN
        out = trunk(x)[0]
        expected = F.interpolate(_decoder_reference(aspp, res2, blocks['decoder']),
                                 size=(40, 48), mode='bilinear', align_corners=True)
        torch.testing.assert_close(out, expected, rtol=1e-4, atol=1e-5)


def test_separable_conv_order_is_conv_relu_bn_not_conv_bn_relu():
    torch.manual_seed(2)
    trunk = _randomise_bn(_trunk(DEPTH=18, DECODER_CHANNELS=8, OUT_FEAT_DIM=4))
    sep = trunk._feature_blocks['aspp'].branches[1]
    x = torch.randn(1, 512, 6, 6)
    with torch.no_grad():
        ours = sep(x)
        torch.testing.assert_close(ours, _separable_reference(x, sep, 12))
        bn_then_relu = F.relu(_bn(F.conv2d(
            F.relu(_bn(F.conv2d(x, sep.depthwise_conv.weight, padding=12, dilation=12,
                                groups=512), sep.depthwise_bn)),
            sep.pointwise_conv.weight), sep.pointwise_bn))
    assert not torch.allclose(ours, bn_then_relu, atol=1e-3)
    assert (ours < 0).any()  # BN last: outputs can be negative


def test_custom_init():
    torch.manual_seed(3)
    trunk = _trunk(DEPTH=18)
    blocks = trunk._feature_blocks
    custom = [blocks['aspp'], blocks['decoder'], blocks['backbone'].bn1]
    bns = [m for part in custom for m in part.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert len(bns) > 10
    for bn in bns:
        assert torch.all(bn.weight == 1) and torch.allclose(bn.bias, torch.full_like(bn.bias, 1e-4))
    # Kaiming normal, fan_in, ReLU gain: std = sqrt(2 / fan_in)
    for conv in (blocks['aspp'].fuse_conv, blocks['decoder'].fuse[0].pointwise_conv,
                 blocks['backbone'].conv1):
        fan_in = conv.weight[0].numel()
        std = conv.weight.std().item()
        assert abs(std / math.sqrt(2 / fan_in) - 1) < 0.1, (conv, std)
    # the rest of the random-init ResNet keeps torchvision's init (BN bias 0)
    assert torch.all(blocks['backbone'].layer1[0].bn1.bias == 0)


def _save_resnet18(path, edit=None):
    state_dict = torchvision.models.resnet18(weights=None).state_dict()
    if edit:
        edit(state_dict)
    torch.save(state_dict, path)
    return state_dict


def test_loads_a_torchvision_checkpoint(tmp_path):
    torch.manual_seed(4)
    path = tmp_path / 'resnet18.pth'
    reference = _save_resnet18(path)
    trunk = _trunk(DEPTH=18, PRETRAINED_PATH=str(path))
    loaded = trunk._feature_blocks['backbone'].state_dict()
    assert set(loaded) == {k for k in reference if not k.startswith('fc.')}
    for key, value in loaded.items():
        assert torch.equal(value, reference[key]), key
    # wrapped in 'state_dict' with DDP's 'module.' prefix
    torch.save({'state_dict': {'module.' + k: v for k, v in reference.items()}},
               tmp_path / 'wrapped.pth')
    wrapped = _trunk(DEPTH=18, PRETRAINED_PATH=str(tmp_path / 'wrapped.pth'))
    assert torch.equal(wrapped._feature_blocks['backbone'].conv1.weight, reference['conv1.weight'])


def test_pretrained_missing_key_is_named(tmp_path):
    path = tmp_path / 'missing.pth'
    _save_resnet18(path, lambda sd: sd.pop('layer3.1.bn2.running_var'))
    with pytest.raises(PretrainedWeightsError, match=r'missing\.pth.*1 missing '
                                                     r'\[layer3\.1\.bn2\.running_var\]'):
        _trunk(DEPTH=18, PRETRAINED_PATH=str(path))


def test_pretrained_wrong_shape_is_named(tmp_path):
    path = tmp_path / 'shape.pth'
    _save_resnet18(path, lambda sd: sd.__setitem__('layer2.0.conv1.weight',
                                                   torch.zeros(128, 64, 1, 1)))
    with pytest.raises(PretrainedWeightsError, match=r'1 shape mismatches \[layer2\.0\.conv1'
                                                     r'\.weight \(128, 64, 1, 1\) vs '
                                                     r'\(128, 64, 3, 3\)\]'):
        _trunk(DEPTH=18, PRETRAINED_PATH=str(path))
    with pytest.raises(PretrainedWeightsError, match='ResNet-50'):  # wrong depth
        _trunk(DEPTH=50, PRETRAINED_PATH=str(tmp_path / 'shape.pth'))


def test_pretrained_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError, match='PRETRAINED_PATH=.*nope.pth'):
        _trunk(DEPTH=18, PRETRAINED_PATH=str(tmp_path / 'nope.pth'))


def test_bad_config_values_are_named():
    with pytest.raises(ValueError, match='DEPTH=19'):
        _trunk(DEPTH=19)
    with pytest.raises(ValueError, match='OUTPUT_STRIDE=4'):
        _trunk(OUTPUT_STRIDE=4)
    with pytest.raises(ValueError, match=r'ASPP_RATES=\[6, 12\] must start with 1'):
        _trunk(DEPTH=18, ASPP_RATES=[6, 12])
    with pytest.raises(KeyError, match="unknown keys \\['DECODER_CH'\\]"):
        _trunk(DECODER_CH=256)
    with pytest.raises(ValueError, match='unknown out_feat_keys'):
        DeepLabV3Plus(depth=18)(torch.randn(1, 3, 32, 32), out_feat_keys=['res4'])


def test_state_dict_layout():
    keys = list(_trunk(DEPTH=18, ASPP_RATES=[1, 2]).state_dict())
    assert all(k.startswith('_feature_blocks.') for k in keys)
    backbone = {k[len('_feature_blocks.backbone.'):] for k in keys if '.backbone.' in k}
    tv = torchvision.models.resnet18(weights=None).state_dict()
    assert backbone == {k for k in tv if not k.startswith('fc.')}
    assert '_feature_blocks.aspp.branches.1.pointwise_bn.running_var' in keys
    assert '_feature_blocks.aspp.branches.2.depthwise_conv.weight' not in keys  # 2 rates
    assert '_feature_blocks.decoder.projection.bias' in keys
