"""ReCo / U2PL segmentation networks (densessl.semisup.networks) against the spec
(shared/specs/semisup.md 1(a), 2(a)) and against torchvision's ResNet: output shapes,
output strides, per-conv dilations, checkpoint key names, parameter counts, gradient flow.
Expected sizes are hard-coded from the conv arithmetic, not recomputed by the module."""
import functools

import pytest
import torch
import torch.nn as nn
import torchvision.models as tv_models

from densessl.semisup import networks as nw

NUM_CLASSES = 5

# (H, W) -> layer1 grid (h1, w1) for each stem: torchvision = ceil(ceil(H/2)/2);
# deep stem (ceil-mode max-pool) = floor(ceil(H/2)/2) + 1
C1_GRID = {'tv': {(65, 65): (17, 17), (64, 96): (16, 24)},
           'deep': {(65, 65): (17, 17), (64, 96): (17, 25)}}
# (stem, H, W, output stride) -> grids of c1..c4
FEATURE_GRIDS = {
    ('tv', 64, 96, 16): [(16, 24), (8, 12), (4, 6), (4, 6)],
    ('tv', 64, 96, 8): [(16, 24), (8, 12), (8, 12), (8, 12)],
    ('tv', 64, 96, 32): [(16, 24), (8, 12), (4, 6), (2, 3)],
    ('deep', 65, 65, 8): [(17, 17), (9, 9), (9, 9), (9, 9)],
    ('deep', 64, 96, 8): [(17, 25), (9, 13), (9, 13), (9, 13)],
    ('deep', 64, 96, 16): [(17, 25), (9, 13), (5, 7), (5, 7)],
}
CHANNELS = {18: (64, 128, 256, 512), 50: (256, 512, 1024, 2048), 101: (256, 512, 1024, 2048)}
TV_RESNET101_PARAMS = 44_549_160          # torchvision resnet101, fc included
FC_PARAMS = 2048 * 1000 + 1000


@pytest.fixture(autouse=True)
def _seed_one_thread():
    """Seeded; one intra-op thread (these tiny convs run slower on two busy cores)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    yield
    torch.set_num_threads(threads)


def grid(t):
    return tuple(t.shape[2:])


def randomise_norm_stats(module):
    """Non-trivial BN affine params and running stats, so eval-mode comparisons mean something."""
    g = torch.Generator().manual_seed(1)
    for m in module.modules():
        if isinstance(m, nn.BatchNorm2d):
            n = m.num_features
            m.weight.data = 0.5 + torch.rand(n, generator=g)
            m.bias.data = 0.1 * torch.randn(n, generator=g)
            m.running_mean = 0.1 * torch.randn(n, generator=g)
            m.running_var = 0.5 + torch.rand(n, generator=g)


def conv_dilations(layer):
    """Per block: dilations of its 3x3 convs in order (BasicBlock conv1, conv2; Bottleneck
    conv2), after checking padding == dilation."""
    out = []
    for block in layer:
        convs = [m for m in block.modules() if isinstance(m, nn.Conv2d) and m.kernel_size == (3, 3)]
        for c in convs:
            assert c.padding == c.dilation
        out.append(tuple(c.dilation[0] for c in convs))
    return out


# ----------------------------------------------------------------------------- shapes
@pytest.mark.parametrize('depth', [18, 50])
@pytest.mark.parametrize('size', [(65, 65), (64, 96)])
def test_reco_output_shapes(depth, size):
    net = nw.ReCoDeepLabV3Plus(NUM_CLASSES, depth=depth)
    out = net(torch.randn(2, 3, *size))
    assert set(out) == {'logits', 'rep'}
    h1, w1 = C1_GRID['tv'][size]
    assert out['logits'].shape == (2, NUM_CLASSES, h1, w1)
    assert out['rep'].shape == (2, 256, h1, w1)
    # the decoder feature both heads read is 48 + 256 = 304 channels, for any depth
    assert net.classifier.blocks[0].conv.in_channels == 304
    assert net.representation.blocks[0].conv.in_channels == 304
    assert len(net.representation.blocks) == 1 and net.representation.proj.out_channels == 256
    assert net.aspp_project.conv.in_channels == 5 * 256
    assert net.aspp_project.conv.kernel_size == (1, 1)
    assert [m.conv.dilation[0] for m in net.aspp.dilated] == [6, 12, 18]
    assert not any(isinstance(m, nn.Dropout2d) for m in net.modules())


@pytest.mark.parametrize('depth', [18, 50])
@pytest.mark.parametrize('size', [(65, 65), (64, 96)])
def test_u2pl_output_shapes(depth, size):
    net = nw.U2PLDeepLabV3Plus(NUM_CLASSES, depth=depth, aux=True)
    out = net(torch.randn(2, 3, *size))
    assert set(out) == {'logits', 'rep', 'aux_logits'}
    h1, w1 = C1_GRID['deep'][size]
    assert out['logits'].shape == (2, NUM_CLASSES, h1, w1)
    assert out['rep'].shape == (2, 256, h1, w1)
    h3, w3 = FEATURE_GRIDS[('deep', *size, 8)][2]
    assert out['aux_logits'].shape == (2, NUM_CLASSES, h3, w3)
    assert net.aux_head.blocks[0].conv.in_channels == CHANNELS[depth][2]
    # 256 + 256 = 512 decoder channels; two 3x3 blocks then 1x1 in both heads
    for head, out_channels in ((net.classifier, NUM_CLASSES), (net.representation, 256)):
        assert [b.conv.in_channels for b in head.blocks] == [512, 256]
        assert all(b.conv.bias is not None for b in head.blocks)
        assert head.proj.out_channels == out_channels
    assert net.aspp_project.conv.kernel_size == (3, 3)
    assert net.aspp_project.conv.in_channels == 5 * 256
    assert net.low_level_project.conv.out_channels == 256
    assert net.low_level_project.conv.bias is not None
    assert [m.conv.dilation[0] for m in net.aspp.dilated] == [12, 24, 36]
    drops = [m.p for m in net.modules() if isinstance(m, nn.Dropout2d)]
    assert drops == [0.1] * 6     # aspp head, 2 + 2 head blocks, aux block


def test_u2pl_without_aux_has_no_aux_output():
    net = nw.U2PLDeepLabV3Plus(NUM_CLASSES, depth=18)
    assert net.aux_head is None
    assert set(net(torch.randn(2, 3, 33, 33))) == {'logits', 'rep'}


def test_aspp_concatenation_order():
    """ReCo concatenates [1x1, rates, pool], U2PL [pool, 1x1, rates]: the pooled branch is
    constant over space, so its 256 channels are where the output has no spatial variance."""
    x = torch.randn(2, 8, 6, 7)
    for pool_first, pooled_slice in ((False, slice(4 * 4, 5 * 4)), (True, slice(0, 4))):
        aspp = nw.ASPP(8, 4, (1, 2, 3), image_pool_first=pool_first).eval()
        nn.init.constant_(aspp.image_pool.bn.bias, 1.0)     # keep the pooled branch non-zero
        out = aspp(x)
        assert out.shape == (2, 20, 6, 7)
        flat = out.flatten(2).std(dim=2)                   # (B, C) spatial std
        constant = (flat < 1e-6).all(dim=0)
        assert constant[pooled_slice].all() and constant.sum() == 4


# ----------------------------------------------------------------------------- strides
@pytest.mark.parametrize('stem,h,w,os_,depth', [
    ('tv', 64, 96, 16, 50), ('tv', 64, 96, 8, 50), ('tv', 64, 96, 32, 18),
    ('deep', 65, 65, 8, 50), ('deep', 64, 96, 8, 18), ('deep', 64, 96, 16, 18)])
def test_backbone_feature_grids(stem, h, w, os_, depth):
    backbone = nw.ResNetBackbone(depth, deep_stem=stem == 'deep', output_stride=os_)
    feats = backbone(torch.randn(2, 3, h, w))
    assert [grid(f) for f in feats] == FEATURE_GRIDS[(stem, h, w, os_)]
    assert [f.shape[1] for f in feats] == list(CHANNELS[depth]) == list(backbone.out_channels)


def test_reco_defaults_are_os16_torchvision_stem():
    net = nw.ReCoDeepLabV3Plus(NUM_CLASSES, depth=50)
    bb = net.backbone
    assert (bb.output_stride, bb.deep_stem) == (16, False)
    assert bb.conv1.kernel_size == (7, 7) and not bb.maxpool.ceil_mode
    assert conv_dilations(bb.layer3) == [(1,)] * 6
    assert bb.layer3[0].conv2.stride == (2, 2)
    # nostride_dilate(2): the strided 3x3 keeps dilation 1 (dilate // 2), the others get 2
    assert conv_dilations(bb.layer4) == [(1,), (2,), (2,)]
    assert bb.layer4[0].conv2.stride == (1, 1) and bb.layer4[0].downsample[0].stride == (1, 1)
    os8 = nw.ReCoDeepLabV3Plus(3, depth=18, output_stride=8)
    assert [m.conv.dilation[0] for m in os8.aspp.dilated] == [12, 24, 36]


def test_u2pl_defaults_are_os8_multigrid_deep_stem():
    net = nw.U2PLDeepLabV3Plus(NUM_CLASSES, depth=50)
    bb = net.backbone
    assert (bb.output_stride, bb.deep_stem, bb.multi_grid) == (8, True, (2, 2, 4))
    assert bb.maxpool.ceil_mode
    # layer3: first block previous dilation (1), the others 2; layer4: (2*2, 4*2, 4*4)
    assert conv_dilations(bb.layer3) == [(1,)] + [(2,)] * 5
    assert conv_dilations(bb.layer4) == [(4,), (8,), (16,)]
    for layer in (bb.layer3, bb.layer4):
        assert all(m.stride == (1, 1) for m in layer.modules() if isinstance(m, nn.Conv2d))
    assert bb.layer2[0].conv2.stride == (2, 2)
    # zero_init_residual: last norm of every block starts at 0
    assert all(blk.bn3.weight.abs().sum() == 0 for layer in (bb.layer1, bb.layer4) for blk in layer)


def test_basic_block_dilations_and_short_multigrid():
    """ResNet-18: the strided conv1 keeps the previous dilation, conv2 gets the layer's;
    layer4 has 2 blocks, so U2PL's (2, 2, 4) uses (2, 2)."""
    bb = nw.ResNetBackbone(18, deep_stem=True, output_stride=8, multi_grid=nw.U2PL_MULTI_GRID)
    assert conv_dilations(bb.layer3) == [(1, 2), (2, 2)]
    assert conv_dilations(bb.layer4) == [(4, 8), (8, 8)]
    with pytest.raises(ValueError, match='multi_grid'):
        nw.ResNetBackbone(50, output_stride=8, multi_grid=(2, 2))


def test_bad_arguments():
    with pytest.raises(ValueError, match='depth'):
        nw.ResNetBackbone(152)
    with pytest.raises(ValueError, match='output_stride'):
        nw.ResNetBackbone(18, output_stride=4)
    with pytest.raises(ValueError, match='aspp_rates'):
        nw.ReCoDeepLabV3Plus(3, depth=18, output_stride=32)


# ----------------------------------------------------------------------------- torchvision
@pytest.mark.parametrize('output_stride,replace', [
    (32, [False, False, False]), (16, [False, False, True]), (8, [False, True, True])])
def test_torchvision_stem_matches_torchvision_resnet50(output_stride, replace):
    """Same weights, eval mode: our features equal torchvision's dilated ResNet-50 (ReCo's
    nostride_dilate gives torchvision's replace_stride_with_dilation for Bottlenecks)."""
    ref = tv_models.resnet50(weights=None, replace_stride_with_dilation=replace)
    randomise_norm_stats(ref)
    ref.eval()
    ours = nw.ResNetBackbone(50, output_stride=output_stride)
    missing, unexpected = ours.load_state_dict(ref.state_dict(), strict=False)
    assert missing == [] and sorted(unexpected) == ['fc.bias', 'fc.weight']
    ours.eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        c1, c2, c3, c4 = ours(x)
        y = ref.maxpool(ref.relu(ref.bn1(ref.conv1(x))))
        r1 = ref.layer1(y)
        r2 = ref.layer2(r1)
        r3 = ref.layer3(r2)
        r4 = ref.layer4(r3)
    for a, b in ((c1, r1), (c2, r2), (c3, r3), (c4, r4)):
        assert a.shape == b.shape
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)


def test_torchvision_checkpoint_loads_strictly(tmp_path):
    ref = tv_models.resnet50(weights=None)
    randomise_norm_stats(ref)
    state = ref.state_dict()
    backbone_keys = sorted(k for k in state if not k.startswith('fc.'))
    ours = nw.ResNetBackbone(50, output_stride=16)
    assert sorted(ours.state_dict()) == backbone_keys
    # a file with fc (torchvision ImageNet layout) and one without (our converter's output)
    # (the wrapped one also goes through a file)
    torch.save({'state_dict': {f'module.{k}': v for k, v in state.items()}}, tmp_path / 'w.pth')
    for name, sd in (('with_fc', state), ('no_fc', {k: state[k] for k in backbone_keys}),
                     ('wrapped file', tmp_path / 'w.pth')):
        fresh = nw.ResNetBackbone(50, output_stride=16)
        nw.load_backbone_weights(fresh, sd)
        for k in backbone_keys:
            assert torch.equal(fresh.state_dict()[k], state[k]), (name, k)
    broken = {k: v for k, v in state.items() if k != 'layer2.0.bn1.running_var'}
    with pytest.raises(ValueError, match=r'1 missing \[layer2.0.bn1.running_var\]'):
        nw.load_backbone_weights(nw.ResNetBackbone(50), broken)
    with pytest.raises(ValueError, match='deep-stem'):
        nw.load_backbone_weights(nw.ResNetBackbone(50, deep_stem=True), state)


def test_resnet101_parameter_counts():
    ref_count = sum(p.numel() for p in tv_models.resnet101(weights=None).parameters())
    assert ref_count == TV_RESNET101_PARAMS
    tv_style = nw.ResNetBackbone(101, output_stride=16)
    assert sum(p.numel() for p in tv_style.parameters()) == TV_RESNET101_PARAMS - FC_PARAMS
    deep = nw.ResNetBackbone(101, deep_stem=True, output_stride=8, multi_grid=(2, 2, 4))
    stem_delta = (-7 * 7 * 3 * 64                        # 7x7 conv gone
                  + 3 * 64 * 9 + 2 * 64                  # conv1.0, conv1.1
                  + 64 * 64 * 9 + 2 * 64                 # conv1.3, conv1.4
                  + 64 * 128 * 9                         # conv1.6
                  + 2 * (128 - 64)                       # bn1 on 128 channels
                  + (128 - 64) * 64                      # layer1.0.conv1 input 128
                  + (128 - 64) * 256)                    # layer1.0.downsample.0 input 128
    assert sum(p.numel() for p in deep.parameters()) == TV_RESNET101_PARAMS - FC_PARAMS + stem_delta


@pytest.mark.parametrize('cls,grid_', [(nw.ReCoDeepLabV3Plus, (9, 9)),
                                       (nw.U2PLDeepLabV3Plus, (9, 9))])
def test_resnet101_networks_tiny_forward(cls, grid_):
    net = cls(NUM_CLASSES)          # default depth 101
    with torch.no_grad():
        out = net(torch.randn(2, 3, 33, 33))
    assert out['logits'].shape == (2, NUM_CLASSES, *grid_)
    assert out['rep'].shape == (2, 256, *grid_)


# ----------------------------------------------------------------------------- deep stem keys
DEEP_STEM_KEYS = ['bn1.bias', 'bn1.num_batches_tracked', 'bn1.running_mean', 'bn1.running_var',
                  'bn1.weight', 'conv1.0.weight',
                  'conv1.1.bias', 'conv1.1.num_batches_tracked', 'conv1.1.running_mean',
                  'conv1.1.running_var', 'conv1.1.weight', 'conv1.3.weight',
                  'conv1.4.bias', 'conv1.4.num_batches_tracked', 'conv1.4.running_mean',
                  'conv1.4.running_var', 'conv1.4.weight', 'conv1.6.weight']


def test_deep_stem_key_names_and_shapes():
    sd = nw.ResNetBackbone(50, deep_stem=True, output_stride=8).state_dict()
    assert sorted(k for k in sd if not k.startswith('layer')) == DEEP_STEM_KEYS
    assert sd['conv1.0.weight'].shape == (64, 3, 3, 3)
    assert sd['conv1.3.weight'].shape == (64, 64, 3, 3)
    assert sd['conv1.6.weight'].shape == (128, 64, 3, 3)
    assert sd['bn1.weight'].shape == (128,)
    assert sd['layer1.0.conv1.weight'].shape == (64, 128, 1, 1)
    assert sd['layer1.0.downsample.0.weight'].shape == (256, 128, 1, 1)
    # block keys are torchvision's
    tv_block_keys = {k for k in tv_models.resnet50(weights=None).state_dict()
                     if k.startswith('layer')}
    assert {k for k in sd if k.startswith('layer')} == tv_block_keys


@pytest.mark.parametrize('layout', ['ours', 'csail', 'mmseg'])
def test_deep_stem_checkpoint_layouts(layout):
    src = nw.ResNetBackbone(18, deep_stem=True, output_stride=8)
    randomise_norm_stats(src)
    ours = src.state_dict()
    if layout == 'ours':
        sd = dict(ours, **{'fc.weight': torch.zeros(3, 512), 'fc.bias': torch.zeros(3)})
    else:
        table = {'csail': {'conv1.0': 'conv1', 'conv1.1': 'bn1', 'conv1.3': 'conv2',
                           'conv1.4': 'bn2', 'conv1.6': 'conv3', 'bn1': 'bn3'},
                 'mmseg': {'conv1.0': 'stem.0', 'conv1.1': 'stem.1', 'conv1.3': 'stem.3',
                           'conv1.4': 'stem.4', 'conv1.6': 'stem.6', 'bn1': 'stem.7'}}[layout]
        sd = {}
        for k, v in ours.items():
            module, _, leaf = k.rpartition('.')
            sd[f'{table.get(module, module)}.{leaf}'] = v
        if layout == 'mmseg':
            sd = {f'backbone.{k}': v for k, v in sd.items()}
        assert set(sd) != set(ours)
    dst = nw.ResNetBackbone(18, deep_stem=True, output_stride=8)
    nw.load_backbone_weights(dst, sd)
    for k, v in dst.state_dict().items():
        assert torch.equal(v, ours[k]), k
    # the stock 32-32-64 ResNetV1c stem does not fit: refused with shapes named
    if layout == 'mmseg':
        bad = dict(sd, **{'backbone.stem.0.weight': torch.zeros(32, 3, 3, 3)})
        mismatch = r'conv1\.0\.weight \(32, 3, 3, 3\) vs \(64, 3, 3, 3\)'
        with pytest.raises(ValueError, match=mismatch):
            nw.load_backbone_weights(dst, bad)


# ----------------------------------------------------------------------------- norms, grads
def test_norm_layer_is_used_everywhere():
    gn = functools.partial(nn.GroupNorm, 8)
    for net in (nw.ReCoDeepLabV3Plus(NUM_CLASSES, depth=18, norm_layer=gn),
                nw.U2PLDeepLabV3Plus(NUM_CLASSES, depth=18, aux=True, norm_layer=gn)):
        assert not any(isinstance(m, nn.BatchNorm2d) for m in net.modules())
        assert sum(isinstance(m, nn.GroupNorm) for m in net.modules()) > 20
        net(torch.randn(2, 3, 33, 33))
    sync = nw.U2PLDeepLabV3Plus(NUM_CLASSES, depth=18, aux=True, norm_layer=nn.SyncBatchNorm)
    norms = [m for m in sync.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    assert norms and all(isinstance(m, nn.SyncBatchNorm) for m in norms)


def _backward(net, x):
    out = net(x)
    g = torch.Generator().manual_seed(2)
    # random projections: a plain sum would give zero gradients through batch norms
    loss = sum((v * torch.randn(v.shape, generator=g)).sum() for v in out.values())
    loss.backward()
    return out


@pytest.mark.parametrize('build', [
    lambda: nw.ReCoDeepLabV3Plus(NUM_CLASSES, depth=18),
    lambda: nw.U2PLDeepLabV3Plus(NUM_CLASSES, depth=18, aux=True, zero_init_residual=False),
])
def test_gradients_reach_every_parameter(build):
    net = build().train()
    _backward(net, torch.randn(2, 3, 48, 40))
    dead = [n for n, p in net.named_parameters()
            if p.grad is None or not torch.isfinite(p.grad).all() or p.grad.abs().sum() == 0]
    assert dead == []


def test_u2pl_zero_init_residual_gradients():
    """With U2PL's zero_init_residual every parameter still gets a gradient tensor, and the
    zero-initialised last norms get a non-zero one (they are how the branches wake up)."""
    net = nw.U2PLDeepLabV3Plus(NUM_CLASSES, depth=18, aux=True).train()
    _backward(net, torch.randn(2, 3, 48, 40))
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in net.parameters())
    last_norms = [blk.bn2 for i in range(1, 5) for blk in getattr(net.backbone, f'layer{i}')]
    assert all(n.weight.abs().sum() == 0 and n.weight.grad.abs().sum() > 0 for n in last_norms)
    heads = [p for n, p in net.named_parameters() if not n.startswith('backbone.')]
    assert all(p.grad.abs().sum() > 0 for p in heads)
