"""Chest-X-ray-pretrained weight layouts, torchxrayvision names, timm backbones and
a frozen backbone as the autoencoder's encoder.

Every state dict is built from the architectures with random values: nothing is
downloaded.
"""

import os
import re
import sys
import warnings

import numpy as np
import pytest
import torch
import torchvision
from torch import nn
from torch.nn import functional as F

from skcxr.nn._backbone_modules import IMAGENET_MEAN, IMAGENET_STD
from skcxr.nn._backbones import (
    XRV_WEIGHTS,
    TimmWeights,
    build_backbone,
    check_backbone_name,
    list_backbones,
)
from skcxr.nn._timm_backbones import _timm_spec


def _shuffle_batch_norms(model, seed):
    """Random running statistics, so that every loaded tensor matters."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.BatchNorm2d):
                n = module.num_features
                module.running_mean.copy_(torch.randn(n, generator=generator) * 0.1)
                module.running_var.copy_(torch.rand(n, generator=generator) + 0.5)
                module.weight.copy_(torch.rand(n, generator=generator) + 0.5)
                module.bias.copy_(torch.randn(n, generator=generator) * 0.1)
    return model


def _rgb(x, mean=IMAGENET_MEAN, std=IMAGENET_STD):
    mean = torch.tensor(mean).view(1, -1, 1, 1)
    std = torch.tensor(std).view(1, -1, 1, 1)
    return (x.repeat(1, 3, 1, 1) - mean) / std


def _xrv_input(x, size):
    """torchxrayvision's convention: one channel in [-1024, 1024] at ``size`` px."""
    x = (2 * x - 1) * 1024
    return F.interpolate(x, size=(size, size), mode="bilinear", antialias=True)


def _close(a, b, rel=1e-4):
    scale = float(b.abs().max()) + 1.0
    assert a.shape == b.shape
    assert float((a - b).abs().max()) <= rel * scale


@pytest.fixture(scope="module")
def densenet_rgb():
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = torchvision.models.densenet121(weights=None)
    return _shuffle_batch_norms(model, 0).eval()


@pytest.fixture(scope="module")
def densenet_gray():
    """torchxrayvision's DenseNet121 architecture: one input channel, 18 classes."""
    with torch.random.fork_rng():
        torch.manual_seed(1)
        model = torchvision.models.densenet121(weights=None, num_classes=18)
    model.features.conv0 = nn.Conv2d(1, 64, 7, stride=2, padding=3, bias=False)
    nn.init.normal_(model.features.conv0.weight, std=1e-3)
    return _shuffle_batch_norms(model, 1).eval()


def _xrv_state(densenet_gray):
    state = densenet_gray.state_dict()
    state["op_threshs"] = torch.rand(18)  # torchxrayvision's extra buffer
    return state


def _old_style(key):
    """torchvision 0.2's DenseNet key names, as CheXNet checkpoints have them."""
    return re.sub(r"(denselayer\d+\.(?:norm|relu|conv))([12])\.", r"\1.\2.", key)


# ------------------------------------------------------------------ key layouts
@pytest.mark.slow
def test_torchvision_and_chexnet_layouts_load_the_same_weights(tmp_path, densenet_rgb):
    state = densenet_rgb.state_dict()
    torch.save(state, tmp_path / "torchvision.pth")
    chexnet = {
        f"module.densenet121.{_old_style(k)}": v
        for k, v in state.items()
        if not k.startswith("classifier.")
    }
    chexnet["module.densenet121.classifier.0.weight"] = torch.randn(14, 1024)
    chexnet["module.densenet121.classifier.0.bias"] = torch.randn(14)
    assert any(".norm.1." in k for k in chexnet)  # old-style keys are read too
    torch.save(
        {"epoch": 7, "state_dict": chexnet, "best_loss": 0.2},
        tmp_path / "m-25012018-123527.pth.tar",
    )
    tv = build_backbone("densenet121", weights=tmp_path / "torchvision.pth").eval()
    chex = build_backbone(
        "densenet121", weights=tmp_path / "m-25012018-123527.pth.tar"
    ).eval()
    assert tv.weights_layout == "torchvision" and chex.weights_layout == "chexnet"
    # the values land in the right tensors
    key = "denseblock3.denselayer7.conv2.weight"
    torch.testing.assert_close(
        chex.features.get_parameter(key), state[f"features.{key}"]
    )
    torch.testing.assert_close(
        chex.features.norm5.running_var, state["features.norm5.running_var"]
    )
    x = torch.rand(2, 1, 48, 48)
    with torch.no_grad():
        expected = F.relu(densenet_rgb.features(_rgb(x)))  # ImageNet-normalised RGB
        _close(tv(x), expected)
        _close(chex(x), expected)


@pytest.mark.slow
def test_torchxrayvision_layout_applies_its_input_convention(tmp_path, densenet_gray):
    torch.save(_xrv_state(densenet_gray), tmp_path / "xrv.pt")
    net = build_backbone("densenet121", weights=tmp_path / "xrv.pt").eval()
    assert net.weights_layout == "torchxrayvision"
    torch.testing.assert_close(
        net.features.denseblock1.denselayer2.conv1.weight,
        densenet_gray.features.denseblock1.denselayer2.conv1.weight,
    )
    x = torch.rand(2, 1, 40, 40)  # fed in [0, 1], resized to 224 inside
    with torch.no_grad():
        out = net(x)
        expected = F.relu(densenet_gray.features(_xrv_input(x, 224)))
    assert out.shape == (2, 1024, 7, 7)
    _close(out, expected)


@pytest.mark.slow
def test_the_input_size_survives_saving_the_backbone_and_its_estimators(
    tmp_path, densenet_gray
):
    """The 224 px resize of torchxrayvision's weights is part of the state: the
    backbone's own saved state dict and the pickled estimators, rebuilt without
    the weights file, resize as the original does."""
    import pickle

    from skcxr import CNNEmbedder, TransferClassifier

    torch.save(_xrv_state(densenet_gray), tmp_path / "xrv.pt")
    net = build_backbone("densenet121", weights=tmp_path / "xrv.pt").eval()
    state = net.state_dict()
    torch.save(state, tmp_path / "own.pt")
    again = build_backbone("densenet121", weights=tmp_path / "own.pt").eval()
    assert again.weights_layout == "skcxr"
    x = torch.rand(2, 1, 40, 40)
    with torch.no_grad():
        _close(again(x), net(x))
        assert again(x).shape == (2, 1024, 7, 7)  # resized to 224 inside
    # a state dict without the size (an older file) loads and keeps the built one
    older = {k: v for k, v in state.items() if not k.endswith("_extra_state")}
    assert len(older) == len(state) - 1
    random_init = build_backbone("densenet121", weights=None)
    random_init.load_state_dict(older)
    assert random_init(x).shape == (2, 1024, 1, 1)  # no resize, as built

    X = np.random.default_rng(0).random((4, 40, 40)).astype(np.float32)
    embedder = CNNEmbedder(backbone="densenet121", weights=tmp_path / "xrv.pt").fit(X)
    classifier = TransferClassifier(
        backbone="densenet121",
        weights=tmp_path / "xrv.pt",
        trainable="all",
        max_epochs=1,
        batch_size=4,
        random_state=0,
    ).fit(X, np.array([0, 1, 0, 1]))
    for model, output in ((embedder, "transform"), (classifier, "predict_proba")):
        loaded = pickle.loads(pickle.dumps(model))
        np.testing.assert_allclose(
            getattr(loaded, output)(X), getattr(model, output)(X), rtol=1e-5, atol=1e-6
        )


def test_a_file_of_no_known_layout_lists_the_expected_keys(tmp_path):
    torch.save({"backbone.stem.weight": torch.zeros(64, 3, 7, 7)}, tmp_path / "x.pth")
    with pytest.raises(ValueError) as info:
        build_backbone("densenet121", weights=tmp_path / "x.pth")
    message = str(info.value)
    for expected in (
        "'features.conv0.weight' of shape (64, 3, 7, 7)",
        "[module.]densenet121.features.conv0.weight",
        "(64, 1, 7, 7)",
        "torchxrayvision",
        "chexnet",
        "backbone.stem.weight",
        "x.pth",
    ):
        assert expected in message, expected


@pytest.mark.slow
def test_torchxrayvision_resnet50_layout(tmp_path):
    with torch.random.fork_rng():
        torch.manual_seed(2)
        model = torchvision.models.resnet50(weights=None, num_classes=18)
    model.conv1 = nn.Conv2d(1, 64, 7, stride=2, padding=3, bias=False)
    nn.init.normal_(model.conv1.weight, std=1e-3)
    model = _shuffle_batch_norms(model, 2).eval()
    # the published file (a state dict of the ResNet), and a wrapper's state dict
    torch.save(model.state_dict(), tmp_path / "published.pt")
    wrapped = {f"model.{k}": v for k, v in model.state_dict().items()}
    wrapped["op_threshs"] = torch.rand(18)
    torch.save(wrapped, tmp_path / "wrapped.pt")
    x = torch.rand(1, 1, 64, 64)
    with torch.no_grad():
        h = _xrv_input(x, 512)
        for name in ("conv1", "bn1", "relu", "maxpool"):
            h = getattr(model, name)(h)
        for i in range(1, 5):
            h = getattr(model, f"layer{i}")(h)
    for file in ("published.pt", "wrapped.pt"):
        net = build_backbone("resnet50", weights=tmp_path / file).eval()
        assert net.weights_layout == "torchxrayvision"
        with torch.no_grad():
            out = net(x)
        assert out.shape == (1, 2048, 16, 16)  # 512 px inside
        _close(out, h)


# --------------------------------------------------------- torchxrayvision names
def test_xrv_names_resolve_to_its_folder(tmp_path, monkeypatch, densenet_gray):
    monkeypatch.setenv("HOME", str(tmp_path))
    folder = tmp_path / ".torchxrayvision" / "models_data"
    _, filename = XRV_WEIGHTS["densenet121-res224-nih"]
    with pytest.raises(FileNotFoundError) as info:
        build_backbone("densenet121", weights="xrv:densenet121-res224-nih")
    message = str(info.value)
    assert filename in message and str(folder) in message
    assert "https://github.com/mlmed/torchxrayvision/releases/download/v1/" in message
    folder.mkdir(parents=True)
    torch.save(_xrv_state(densenet_gray), folder / filename)
    for name in ("xrv:densenet121-res224-nih", "xrv:nih"):
        net = build_backbone("densenet121", weights=name)
        assert net.weights_layout == "torchxrayvision"
        torch.testing.assert_close(
            net.features.norm5.running_mean,
            densenet_gray.features.norm5.running_mean,
        )
    with pytest.raises(ValueError, match="use backbone='densenet121'"):
        build_backbone("resnet50", weights="xrv:nih")
    with pytest.raises(ValueError, match="Unknown torchxrayvision weights"):
        build_backbone("densenet121", weights="xrv:nothing")
    assert set(XRV_WEIGHTS) == {
        *(
            f"densenet121-res224-{k}"
            for k in ("all", "nih", "pc", "chex", "rsna", "mimic_nb", "mimic_ch")
        ),
        "resnet50-res512-all",
    }


def _xrv():
    with warnings.catch_warnings():  # importing it silences every warning
        return pytest.importorskip("torchxrayvision")


def test_xrv_file_names_match_the_package(monkeypatch):
    xrv = _xrv()
    for name, (arch, filename) in XRV_WEIGHTS.items():
        url = xrv.models.model_urls[name]["weights_url"]
        assert os.path.basename(url) == filename
        assert name.startswith(arch)


def test_xrv_pickled_model_file_is_read(tmp_path, monkeypatch):
    """The published DenseNet files hold a whole pickled torchxrayvision model."""
    xrv = _xrv()
    monkeypatch.setenv("HOME", str(tmp_path))
    folder = tmp_path / ".torchxrayvision" / "models_data"
    folder.mkdir(parents=True)
    with torch.random.fork_rng():
        torch.manual_seed(3)
        model = _shuffle_batch_norms(xrv.models.DenseNet(), 3).eval()
    torch.save(model, folder / XRV_WEIGHTS["densenet121-res224-all"][1])
    net = build_backbone("densenet121", weights="xrv:all")
    assert net.weights_layout == "torchxrayvision"
    torch.testing.assert_close(net.features.norm0.bias, model.features.norm0.bias)


@pytest.mark.slow
def test_embedder_matches_torchxrayvision_features2(tmp_path):
    from skcxr import CNNEmbedder

    xrv = _xrv()
    with torch.random.fork_rng():
        torch.manual_seed(4)
        model = _shuffle_batch_norms(xrv.models.DenseNet(), 4).eval()
    model.input_resolution = 224  # as with its published weights: resized inside
    torch.save(model.state_dict(), tmp_path / "xrv.pt")
    images = np.random.default_rng(0).random((2, 64, 64), dtype=np.float32)
    embedder = CNNEmbedder(
        backbone="densenet121", weights=tmp_path / "xrv.pt", device="cpu"
    ).fit(images)
    ours = embedder.transform(images)
    with torch.no_grad():  # torchxrayvision's own convention: [-1024, 1024]
        theirs = model.features2((2 * torch.from_numpy(images)[:, None] - 1) * 1024)
    assert ours.shape == (2, 1024)
    _close(torch.from_numpy(ours), theirs, rel=1e-4)


# ------------------------------------------------------------------------- timm
TIMM_NAME = "mobilenetv3_small_050"


@pytest.fixture(scope="module")
def timm_model():
    timm = pytest.importorskip("timm")
    with torch.random.fork_rng():
        torch.manual_seed(5)
        model = timm.create_model(TIMM_NAME)
    return _shuffle_batch_norms(model, 5).eval()


def test_timm_backbone_folds_the_stem_and_uses_forward_features(tmp_path, timm_model):
    path = tmp_path / "timm.pth"
    torch.save(timm_model.state_dict(), path)
    net = build_backbone(f"timm:{TIMM_NAME}", weights=path).eval()
    assert net.weights_layout == "timm"
    assert net.out_channels == timm_model.num_features
    assert net.gradcam_layer == "features"  # the forward_features output
    assert net.blocks[0] == "features.model.conv_stem"
    assert "features.model.blocks.5" in net.blocks
    assert not any("conv_head" in b or "classifier" in b for b in net.blocks)
    x = torch.rand(2, 1, 64, 64)
    cfg = timm_model.pretrained_cfg
    with torch.no_grad():
        expected = timm_model.forward_features(_rgb(x, cfg["mean"], cfg["std"]))
        _close(net(x), expected, rel=1e-5)
    # the gray backbone's own state dict and a safetensors file load too
    torch.save(net.state_dict(), tmp_path / "gray.pth")
    from safetensors.torch import save_file

    save_file(timm_model.state_dict(), tmp_path / "model.safetensors")
    for file in ("gray.pth", "model.safetensors"):
        again = build_backbone(f"timm:{TIMM_NAME}", weights=tmp_path / file).eval()
        with torch.no_grad():
            _close(again(x), expected, rel=1e-5)


def test_timm_imagenet_weights_come_from_the_cache(tmp_path, monkeypatch, timm_model):
    from huggingface_hub import constants

    hub = tmp_path / "hf"
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(hub))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    repo = timm_model.pretrained_cfg["hf_hub_id"]
    with pytest.raises(FileNotFoundError) as info:
        build_backbone(f"timm:{TIMM_NAME}", weights="imagenet")
    message = str(info.value)
    assert "'model.safetensors'" in message and repo in message and str(hub) in message
    assert "weights=<path" in message
    assert TimmWeights(TIMM_NAME).file() is None
    # the Hugging Face cache layout, as timm.create_model(pretrained=True) leaves it
    folder = hub / f"models--{repo.replace('/', '--')}"
    (folder / "refs").mkdir(parents=True)
    (folder / "refs" / "main").write_text("abc123")
    snapshot = folder / "snapshots" / "abc123"
    snapshot.mkdir(parents=True)
    from safetensors.torch import save_file

    save_file(timm_model.state_dict(), snapshot / "model.safetensors")
    assert TimmWeights(TIMM_NAME).file() == str(snapshot / "model.safetensors")
    net = build_backbone(f"timm:{TIMM_NAME}", weights="imagenet").eval()
    torch.testing.assert_close(
        net.features.model.blocks[2][0].conv_pw.weight,
        timm_model.blocks[2][0].conv_pw.weight,
    )


def test_timm_names_listing_and_errors(monkeypatch):
    pytest.importorskip("timm")
    assert "timm:inception_resnet_v2" in list_backbones()
    assert "timm:inception_resnet_v2" not in list_backbones(source="registry")
    everything = list_backbones(source="timm")
    assert len(everything) > 500 and f"timm:{TIMM_NAME}" in everything
    assert check_backbone_name("timm:resnet18") == "timm:resnet18"
    with pytest.raises(ValueError, match="Did you mean timm:resnet18"):
        check_backbone_name("timm:resnet18x")
    spec = _timm_spec("inception_resnet_v2")
    assert (spec.native_size, spec.min_size, spec.mean) == (299, 75, (0.5,) * 3)
    assert spec.stem == "model.conv2d_1a.conv"


def test_timm_missing_gives_an_import_error_naming_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "timm", None)
    _timm_spec.cache_clear()
    try:
        with pytest.raises(ImportError, match=r"skcxr\[timm\]"):
            build_backbone("timm:resnet18")
        assert list_backbones() == list_backbones(source="registry")
    finally:
        _timm_spec.cache_clear()


def _timm_test_model(name, seed):
    timm = pytest.importorskip("timm")
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return timm.create_model(name).eval()


def test_timm_transformer_tokens_become_a_feature_map(tmp_path):
    """A ViT's patch tokens (class token dropped) on their grid, the images
    resized to the size the model was built for; Swin-style channels-last
    outputs permuted."""
    vit = _timm_test_model("test_vit", 7)
    cfg = vit.pretrained_cfg
    size = cfg["input_size"][-1]
    assert cfg["fixed_input_size"] and vit.num_prefix_tokens == 1
    torch.save(vit.state_dict(), tmp_path / "vit.pth")
    net = build_backbone("timm:test_vit", weights=tmp_path / "vit.pth").eval()
    x = torch.rand(2, 1, 48, 48)  # not the model's size
    resized = F.interpolate(x, size=(size, size), mode="bilinear", antialias=True)
    with torch.no_grad():
        tokens = vit.forward_features(_rgb(resized, cfg["mean"], cfg["std"]))
        out = net(x)
    grid = size // 16
    assert tokens.shape == (2, 1 + grid * grid, vit.num_features)
    assert out.shape == (2, vit.num_features, grid, grid)
    # patch token k is grid cell (k // grid, k % grid)
    _close(out[:, :, 1, 2], tokens[:, 1 + grid + 2], rel=1e-5)
    _close(out.flatten(2).transpose(1, 2), tokens[:, 1:], rel=1e-5)
    assert net.blocks[1] == "features.model.blocks.0"  # a ModuleList's blocks

    mamba = _timm_test_model("test_mambaout", 8)
    assert mamba.output_fmt == "NHWC"
    torch.save(mamba.state_dict(), tmp_path / "mamba.pth")
    net = build_backbone("timm:test_mambaout", weights=tmp_path / "mamba.pth").eval()
    cfg = mamba.pretrained_cfg
    x = torch.rand(2, 1, 64, 64)
    with torch.no_grad():
        expected = mamba.forward_features(_rgb(x, cfg["mean"], cfg["std"]))
        _close(net(x), expected.permute(0, 3, 1, 2), rel=1e-5)


@pytest.mark.slow
@pytest.mark.parametrize("name", [TIMM_NAME, "test_vit"])  # a CNN, a transformer
def test_embedder_classifier_and_grad_cam_on_timm_backbones(name):
    import pickle

    pytest.importorskip("timm")
    from skcxr import CNNEmbedder, TransferClassifier
    from skcxr.inspection import grad_cam

    rng = np.random.default_rng(0)
    X = rng.random((8, 48, 48), dtype=np.float32)
    y = np.array([0, 1] * 4)
    codes = CNNEmbedder(backbone=f"timm:{name}", weights=None).fit_transform(X)
    assert codes.shape[0] == 8 and codes.ndim == 2 and np.isfinite(codes).all()
    clf = TransferClassifier(
        backbone=f"timm:{name}",
        weights=None,
        trainable=2,
        max_epochs=1,
        batch_size=4,
        validation_fraction=0.0,
        device="cpu",
        random_state=0,
    ).fit(X, y)
    proba = clf.predict_proba(X)
    assert proba.shape == (8, 2)
    np.testing.assert_allclose(pickle.loads(pickle.dumps(clf)).predict_proba(X), proba)
    maps = grad_cam(clf, X[:2])
    assert maps.shape == (2, 48, 48) and np.isfinite(maps).all()
    if name == "test_vit":  # a map over its 10 x 10 patch grid, not a constant
        assert maps.std() > 0  # (the CNN's 2 x 2 last map may come out flat)


def test_patch_stages_follow_the_size_the_backbone_resizes_to(tmp_path, densenet_gray):
    """PaDiM's strides count on the backbone's own input size (224 px inside
    torchxrayvision's DenseNet), whatever size the images come in."""
    from skcxr.nn._patch_features import resized_input, stage_blocks

    torch.save(_xrv_state(densenet_gray), tmp_path / "xrv.pt")
    net = build_backbone("densenet121", weights=tmp_path / "xrv.pt").eval()
    assert resized_input(net) == 224
    assert resized_input(build_backbone("densenet121", weights=None)) is None
    expected = ["features.denseblock1", "features.denseblock2"]  # 56 and 28 px
    assert stage_blocks(net, (4, 8), 64) == expected
    assert stage_blocks(net, (4, 8), 224) == expected


def test_patch_methods_on_channels_last_and_token_timm_backbones():
    pytest.importorskip("timm")
    from skcxr import ReconstructionAnomalyDetector

    X = np.random.default_rng(0).random((6, 64, 64), dtype=np.float32)
    # MambaOut's stages are (n, h, w, C): read as maps of strides 4 and 8
    det = ReconstructionAnomalyDetector(
        backbone="timm:test_mambaout", weights=None, random_state=0
    ).fit(X)
    assert det.feature_extractor_.blocks == [
        "features.model.stages.0",
        "features.model.stages.1",
    ]
    with torch.no_grad():
        grid = det.feature_extractor_(torch.from_numpy(X[:2, None]))
    assert grid.shape[-2:] == (16, 16)  # stride 4 at 64 px
    assert det.anomaly_map(X[:2]).shape == (2, 64, 64)
    # a model built for one size is probed and fed at that size
    fixed = ReconstructionAnomalyDetector(
        backbone="timm:test_maxvit", weights=None, random_state=0
    ).fit(X[:4])
    assert fixed.feature_extractor_.input_size == 160
    # a plain ViT has one stride: refused, saying why
    with pytest.raises(ValueError, match="return tokens"):
        ReconstructionAnomalyDetector(
            backbone="timm:test_vit", weights=None, random_state=0
        ).fit(X)


# ------------------------------------------------- autoencoder's frozen encoder
def test_autoencoder_with_a_frozen_backbone_encoder():
    from skcxr import ReconstructionAnomalyDetector
    from skcxr.nn import SmallCNN, build_backbone

    X = np.random.default_rng(0).random((8, 32, 32), dtype=np.float32)
    with torch.random.fork_rng():
        torch.manual_seed(6)
        encoder = SmallCNN(channels=(4, 8))
    reference = build_backbone(encoder).eval()
    det = ReconstructionAnomalyDetector(
        method="autoencoder",
        encoder=encoder,
        latent_dim=3,
        depth=2,
        width=4,
        max_epochs=3,
        lr=1e-2,
        batch_size=4,
        device="cpu",
        random_state=0,
    ).fit(X)
    frozen = det.module_.encoder
    # the encoder was neither trained nor re-initialised, batch norms included
    for key, value in reference.state_dict().items():
        torch.testing.assert_close(frozen.state_dict()[key], value)
    assert not any(p.requires_grad for p in frozen.parameters())
    losses = det.history_[:, "train_loss"]
    assert losses[-1] < losses[0]  # the decoder learns
    codes = det.transform(X)
    assert codes.shape == (8, 3)
    with torch.no_grad():  # the code is the bottleneck of the pooled features
        pooled = reference(torch.from_numpy(X)[:, None]).mean((2, 3))
        expected = det.module_.to_mu(pooled).numpy()
    np.testing.assert_allclose(codes, expected, rtol=1e-4, atol=1e-5)
    # the default keeps the trained convolutional encoder
    plain = ReconstructionAnomalyDetector(
        method="autoencoder", latent_dim=3, depth=2, width=4, max_epochs=1
    ).fit(X)
    assert isinstance(plain.module_.encoder, nn.Sequential)


@pytest.mark.slow
def test_efficientnet_b4_as_the_vae_encoder():
    from skcxr import ReconstructionAnomalyDetector

    X = np.random.default_rng(1).random((6, 32, 32), dtype=np.float32)
    det = ReconstructionAnomalyDetector(
        method="autoencoder",
        variational=True,
        encoder="efficientnet_b4",
        weights=None,
        latent_dim=4,
        depth=2,
        width=4,
        max_epochs=1,
        batch_size=3,
        device="cpu",
        random_state=0,
    ).fit(X)
    assert det.module_.encoder.name == "efficientnet_b4"
    assert det.module_.to_mu.in_features == 1792
    assert det.transform(X).shape == (6, 4)
    again = ReconstructionAnomalyDetector(**det.get_params()).fit(X)
    np.testing.assert_allclose(again.transform(X), det.transform(X), rtol=1e-5)
    with pytest.raises(ValueError, match="Unknown encoder"):
        ReconstructionAnomalyDetector(method="autoencoder", encoder="nope").fit(X)
