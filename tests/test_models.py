import math

import pytest
import torch
from torch import nn

from pipelines.train.models import BACKBONES, I3D, build_backbone, i3d, r2plus1d_18, r3d_18, small

CLIP = (2, 3, 8, 32, 32)  # B, C, T, H, W
FEATURE_DIM = {"r2plus1d_18": 512, "r3d_18": 512, "i3d": 1024, "small": 128}
MAP_SIZE = {"r2plus1d_18": (1, 2, 2), "r3d_18": (1, 2, 2), "i3d": (1, 1, 1), "small": (1, 2, 2)}  # T', H', W' of CLIP
BN_KEYS = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")


@pytest.fixture(scope="module")
def clip():
    return torch.randn(CLIP, generator=torch.Generator().manual_seed(0))


@pytest.fixture(scope="module", params=BACKBONES)
def named_model(request):
    return request.param, build_backbone(request.param, num_classes=5).eval()


def test_backbone_names():
    assert set(BACKBONES) == set(FEATURE_DIM)


def test_shapes(named_model, clip):
    name, model = named_model
    dim = FEATURE_DIM[name]
    assert model.feature_dim == dim
    assert model.fc.in_features == dim
    with torch.no_grad():
        maps, features, logits = model.feature_maps(clip), model.forward_features(clip), model(clip)
    assert maps.shape == (2, dim, *MAP_SIZE[name])
    assert features.shape == (2, dim)
    assert logits.shape == (2, 5)
    torch.testing.assert_close(features, maps.mean(dim=(2, 3, 4)))
    torch.testing.assert_close(logits, model.fc(features))


@pytest.mark.parametrize("name", BACKBONES)
def test_dropout_before_fc(name):
    model = build_backbone(name, num_classes=3, dropout=1.0)
    assert isinstance(model.dropout, nn.Dropout) and model.dropout.p == 1.0
    assert build_backbone(name).dropout.p == 0.0
    with torch.no_grad():
        logits = model.train()(torch.randn(2, 3, 4, 16, 16))
    torch.testing.assert_close(logits, model.fc.bias.expand(2, 3))  # every feature dropped


def test_build_backbone_rejects_unknown_name():
    with pytest.raises(ValueError, match="unknown backbone 'resnet50'"):
        build_backbone("resnet50")


@pytest.mark.parametrize("builder", [r2plus1d_18, r3d_18, i3d, small])
def test_builders_are_keyword_only(builder):
    with pytest.raises(TypeError):
        builder(101)


def test_initialisation():
    model = r3d_18()
    conv = model.layer3[0].conv1[0]  # 256 x 128 x 3x3x3
    fan_out = conv.out_channels * math.prod(conv.kernel_size)
    assert conv.weight.std().item() == pytest.approx(math.sqrt(2 / fan_out), rel=0.05)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm3d):
            assert torch.all(m.weight == 1) and torch.all(m.bias == 0)
    assert torch.all(model.fc.bias == 0) and model.fc.weight.std().item() == pytest.approx(0.01, rel=0.1)


# --- torchvision key layout ---------------------------------------------------------
# Written out from torchvision/models/video/resnet.py (VideoResNet, BasicBlock,
# Conv3DSimple, Conv2Plus1D, BasicStem, R2Plus1dStem), not from our code.


def bn(prefix):
    return [f"{prefix}.{k}" for k in BN_KEYS]


def torchvision_resnet_keys(two_plus_one_d: bool) -> list[str]:
    if two_plus_one_d:  # R2Plus1dStem: conv, BN, ReLU, conv, BN, ReLU
        keys = ["stem.0.weight", *bn("stem.1"), "stem.3.weight", *bn("stem.4")]
    else:  # BasicStem: conv, BN, ReLU
        keys = ["stem.0.weight", *bn("stem.1")]
    for layer in (1, 2, 3, 4):
        for block in (0, 1):
            for conv in ("conv1", "conv2"):  # nn.Sequential(conv_builder(...), BN[, ReLU])
                p = f"layer{layer}.{block}.{conv}"
                if two_plus_one_d:  # Conv2Plus1D: conv, BN, ReLU, conv
                    keys += [f"{p}.0.0.weight", *bn(f"{p}.0.1"), f"{p}.0.3.weight", *bn(f"{p}.1")]
                else:
                    keys += [f"{p}.0.weight", *bn(f"{p}.1")]
            if layer > 1 and block == 0:
                keys += [f"layer{layer}.0.downsample.0.weight", *bn(f"layer{layer}.0.downsample.1")]
    return keys + ["fc.weight", "fc.bias"]


R2PLUS1D_SHAPES = {  # mid-planes = (in*out*27) // (in*9 + 3*out), the same for conv1 and conv2
    "stem.0.weight": (45, 3, 1, 7, 7),
    "stem.3.weight": (64, 45, 3, 1, 1),
    "layer1.0.conv1.0.0.weight": (144, 64, 1, 3, 3),
    "layer1.0.conv1.0.3.weight": (64, 144, 3, 1, 1),
    "layer2.0.conv1.0.0.weight": (230, 64, 1, 3, 3),
    "layer2.0.conv2.0.0.weight": (230, 128, 1, 3, 3),
    "layer2.0.conv2.0.3.weight": (128, 230, 3, 1, 1),
    "layer2.1.conv1.0.0.weight": (288, 128, 1, 3, 3),
    "layer3.0.conv1.0.0.weight": (460, 128, 1, 3, 3),
    "layer4.0.conv1.0.0.weight": (921, 256, 1, 3, 3),
    "layer4.1.conv2.0.3.weight": (512, 1152, 3, 1, 1),
    "layer4.0.downsample.0.weight": (512, 256, 1, 1, 1),
    "layer4.1.conv2.1.running_var": (512,),
    "fc.weight": (400, 512),
}
R3D_SHAPES = {
    "stem.0.weight": (64, 3, 3, 7, 7),
    "layer1.0.conv1.0.weight": (64, 64, 3, 3, 3),
    "layer2.0.conv1.0.weight": (128, 64, 3, 3, 3),
    "layer2.0.downsample.0.weight": (128, 64, 1, 1, 1),
    "layer4.1.conv2.0.weight": (512, 512, 3, 3, 3),
    "fc.weight": (400, 512),
}
# "num_params" of torchvision's R2Plus1D_18_Weights / R3D_18_Weights.KINETICS400_V1.
TORCHVISION = {
    "r2plus1d_18": (r2plus1d_18, True, 224, R2PLUS1D_SHAPES, 31_505_325),
    "r3d_18": (r3d_18, False, 122, R3D_SHAPES, 33_371_472),
}


@pytest.mark.parametrize("name", TORCHVISION)
def test_torchvision_state_dict_layout(name):
    builder, two_plus_one_d, count, shapes, num_params = TORCHVISION[name]
    model = builder()
    state = model.state_dict()
    expected = torchvision_resnet_keys(two_plus_one_d)
    assert len(expected) == count
    assert list(state) == expected
    for key, shape in shapes.items():
        assert tuple(state[key].shape) == shape, key
    assert sum(p.numel() for p in model.parameters()) == num_params

    published = {key: torch.rand_like(value, dtype=torch.float32).to(value.dtype) for key, value in state.items()}
    model.load_state_dict(published, strict=True)
    torch.testing.assert_close(model.layer4[1].conv2[1].running_var, published["layer4.1.conv2.1.running_var"])


# --- official FAME I3D key layout ---------------------------------------------------
# Written out from Mark12Ding/FAME backbone/i3d.py: I3D (with_classifier=True) with
# Unit3Dpy (conv3d, batch3d) and Mixed (branch_0, branch_1.{0,1}, branch_2.{0,1},
# branch_3.{0: pool, 1: unit}).

MIXED = ("3b", "3c", "4b", "4c", "4d", "4e", "4f", "5b", "5c")


def official_i3d_keys() -> list[str]:
    units = ["conv3d_1a_7x7", "conv3d_2b_1x1", "conv3d_2c_3x3"]
    for mixed in MIXED:
        branches = ("branch_0", "branch_1.0", "branch_1.1", "branch_2.0", "branch_2.1", "branch_3.1")
        units += [f"mixed_{mixed}.{branch}" for branch in branches]
    keys = [key for unit in units for key in [f"{unit}.conv3d.weight", *bn(f"{unit}.batch3d")]]
    return keys + ["fc.weight", "fc.bias"]


I3D_SHAPES = {
    "conv3d_1a_7x7.conv3d.weight": (64, 3, 7, 7, 7),
    "conv3d_2c_3x3.conv3d.weight": (192, 64, 3, 3, 3),
    "mixed_3b.branch_0.conv3d.weight": (64, 192, 1, 1, 1),
    "mixed_3b.branch_3.1.conv3d.weight": (32, 192, 1, 1, 1),
    "mixed_4f.branch_0.conv3d.weight": (256, 528, 1, 1, 1),
    "mixed_5c.branch_1.1.conv3d.weight": (384, 192, 3, 3, 3),
    "mixed_5c.branch_2.1.batch3d.running_mean": (128,),
    "fc.weight": (400, 1024),
}


def test_i3d_matches_official_fame_layout():
    model = I3D()
    state = model.state_dict()
    expected = official_i3d_keys()
    assert len(expected) == 57 * 6 + 2
    assert sorted(state) == sorted(expected)
    for key, shape in I3D_SHAPES.items():
        assert tuple(state[key].shape) == shape, key
    model.load_state_dict({key: value.clone() for key, value in state.items()}, strict=True)


def test_i3d_feature_map_strides():
    with torch.no_grad():
        maps = I3D().eval().feature_maps(torch.randn(1, 3, 16, 64, 64))
    assert maps.shape == (1, 1024, 2, 2, 2)  # T/8, H/32, W/32
