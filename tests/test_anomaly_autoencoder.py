"""The autoencoder method's options: a trainable pretrained encoder, the
transposed-convolution SELU decoder and the reconstruction loss."""

import pickle
import warnings

import numpy as np
import pytest
import torch
from sklearn.base import clone
from torch import nn
from torch.nn import functional as F

from skcxr import ReconstructionAnomalyDetector
from skcxr.nn import SmallCNN, build_backbone
from skcxr.nn._autoencoder import AutoencoderNet, ConvAutoencoder
from skcxr.utils._model_io import load_model, save_model
from tests.test_anomaly import FAST, SMALL, _smooth_images


@pytest.fixture(scope="module")
def X():
    return _smooth_images(24)


def _encoder():
    """A small network with its own (reproducible) weights, as a pretrained one."""
    with torch.random.fork_rng():
        torch.manual_seed(6)
        return SmallCNN(channels=(4, 8))


def _check_scores(det, X):
    scores = det.score_samples(X)
    assert scores.shape == (len(X),) and np.isfinite(scores).all()
    recon = det.reconstruct(X)
    assert recon.shape == X.shape and 0 <= recon.min() and recon.max() <= 1
    assert det.transform(X).shape == (len(X), det.latent_dim)
    assert np.isfinite(det.history_[:, "train_loss"]).all()


@pytest.mark.parametrize(
    "params",
    [
        dict(decoder="transposed"),
        dict(decoder="transposed", variational=True, loss="mae"),
        dict(loss="mae"),
        dict(loss="bce", variational=True),
        dict(decoder="transposed", loss="bce", error="ssim"),
    ],
)
def test_each_option_trains_and_scores(X, params):
    det = ReconstructionAnomalyDetector(**dict(SMALL, **params)).fit(X)
    _check_scores(det, X)
    again = ReconstructionAnomalyDetector(**dict(SMALL, **params)).fit(X)
    np.testing.assert_array_equal(again.decision_scores_, det.decision_scores_)


def test_transposed_decoder_is_selu_transposed_convolutions(X):
    det = ReconstructionAnomalyDetector(decoder="transposed", **SMALL).fit(X)
    layers = list(det.module_.decoder)
    ups = [m for m in layers if isinstance(m, nn.ConvTranspose2d)]
    assert len(ups) == SMALL["depth"]
    assert all(m.stride == (2, 2) and m.kernel_size == (3, 3) for m in ups)
    assert sum(isinstance(m, nn.SELU) for m in layers) == SMALL["depth"]
    assert not any(isinstance(m, (nn.Upsample, nn.ReLU)) for m in layers)
    assert isinstance(layers[-1], nn.Sigmoid)
    # odd sides: padded inside the network, cropped back
    net = ConvAutoencoder((18, 13), 3, 2, 4, False, decoder="transposed").eval()
    assert net(torch.rand(2, 1, 18, 13))[0].shape == (2, 1, 18, 13)


def test_the_losses_are_the_named_pixel_losses_plus_the_scaled_kl():
    recon = torch.rand(2, 1, 4, 4) * 0.9 + 0.05
    x = torch.rand(2, 1, 4, 4)
    mu, logvar = torch.randn(2, 3), torch.randn(2, 3)
    kl = -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp(), dim=1).mean()
    for name, expected in (
        ("mse", F.mse_loss(recon, x)),
        ("mae", (recon - x).abs().mean()),
        ("bce", -(x * recon.log() + (1 - x) * (1 - recon).log()).mean()),
    ):
        net = AutoencoderNet(nn.Identity(), nn.MSELoss, beta=0.5, loss=name)
        torch.testing.assert_close(net.get_loss((recon, mu, None), None, X=x), expected)
        torch.testing.assert_close(
            net.get_loss((recon, mu, logvar), None, X=x), expected + 0.5 * kl / 16
        )


def test_default_is_the_upsampling_relu_decoder_with_mse(X):
    """The defaults are the network and loss the method always had."""
    default = ReconstructionAnomalyDetector(**SMALL).fit(X)
    explicit = ReconstructionAnomalyDetector(
        encoder_trainable=0, decoder="upsample", loss="mse", **SMALL
    ).fit(X)
    np.testing.assert_array_equal(default.decision_scores_, explicit.decision_scores_)
    layers = list(default.module_.decoder)
    assert sum(isinstance(m, nn.Upsample) for m in layers) == SMALL["depth"]
    assert not any(isinstance(m, (nn.ConvTranspose2d, nn.SELU)) for m in layers)
    assert isinstance(default.module_.encoder, nn.Sequential)


def test_a_pretrained_encoder_is_fine_tuned_from_its_weights(X):
    reference = build_backbone(_encoder()).eval()
    params = dict(SMALL, encoder=_encoder(), weights=None, lr=1e-9, max_epochs=1)
    det = ReconstructionAnomalyDetector(encoder_trainable="all", **params).fit(X)
    encoder = det.module_.encoder
    assert all(p.requires_grad for p in encoder.parameters())
    # trained from the pretrained weights (a tiny step), not re-drawn
    moved = False
    for name, value in reference.named_parameters():
        got = dict(encoder.named_parameters())[name]
        torch.testing.assert_close(got, value, atol=1e-6, rtol=0)
        moved |= not torch.equal(got, value)
    assert moved
    _check_scores(det, X)


def test_encoder_trainable_blocks_train_only_the_last_blocks(X):
    reference = build_backbone(_encoder()).eval()
    params = dict(SMALL, encoder=_encoder(), weights=None, lr=1e-2, max_epochs=2)
    det = ReconstructionAnomalyDetector(encoder_trainable=1, **params).fit(X)
    encoder = det.module_.encoder
    first, last = reference.blocks
    state = encoder.state_dict()
    for key, value in reference.state_dict().items():
        if key.startswith(first + "."):  # frozen: weights and statistics kept
            torch.testing.assert_close(state[key], value)
    assert all(
        p.requires_grad == name.startswith(last + ".")
        for name, p in encoder.named_parameters()
    )
    trained = [k for k in reference.state_dict() if k.startswith(last + ".")]
    assert any(not torch.equal(state[k], reference.state_dict()[k]) for k in trained)
    # in training mode the frozen block's batch norm stays in eval mode
    det.module_.train()
    assert not encoder.get_submodule(first)[1].training
    assert encoder.get_submodule(last)[1].training
    det.module_.eval()
    frozen = ReconstructionAnomalyDetector(**params).fit(X)
    assert not any(p.requires_grad for p in frozen.module_.encoder.parameters())


@pytest.mark.parametrize(
    "params, match",
    [
        (dict(encoder_trainable=9, encoder="small_cnn", weights=None), "at most"),
        (dict(encoder_trainable=1), "encoder=None"),
        (dict(encoder_trainable="some"), "encoder_trainable"),
        (dict(encoder_trainable=-1), "encoder_trainable"),
        (dict(decoder="deconv"), "decoder"),
        (dict(loss="huber"), "loss"),
    ],
)
def test_bad_autoencoder_options_are_refused(X, params, match):
    base = dict(SMALL, depth=1)
    if params.get("encoder") == "small_cnn":
        base["max_epochs"] = 1
    with pytest.raises(ValueError, match=match):
        ReconstructionAnomalyDetector(**dict(base, **params)).fit(X)


def test_the_options_warn_when_set_for_another_method(X):
    with pytest.warns(
        UserWarning,
        match=r"decoder, encoder_trainable, loss are not used by method='padim'",
    ):
        ReconstructionAnomalyDetector(
            decoder="transposed", loss="mae", encoder_trainable="all", **FAST
        ).fit(X)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        ReconstructionAnomalyDetector(
            decoder="transposed", loss="bce", **dict(SMALL, max_epochs=1)
        ).fit(X)


def test_clone_pickle_and_safe_model_file_keep_the_options(X, tmp_path):
    det = ReconstructionAnomalyDetector(
        encoder="small_cnn",
        weights=None,
        encoder_trainable=2,
        decoder="transposed",
        loss="mae",
        **dict(SMALL, max_epochs=1),
    ).fit(X)
    params = clone(det).get_params()
    assert (params["encoder_trainable"], params["decoder"], params["loss"]) == (
        2,
        "transposed",
        "mae",
    )
    expected = det.score_samples(X)
    np.testing.assert_array_equal(
        pickle.loads(pickle.dumps(det)).score_samples(X), expected
    )
    save_model(det, tmp_path / "detector.skops")
    loaded = load_model(tmp_path / "detector.skops")
    np.testing.assert_allclose(loaded.score_samples(X), expected, rtol=1e-6)
    assert loaded.get_params()["decoder"] == "transposed"
    frozen = {
        n for n, p in loaded.module_.encoder.named_parameters() if not p.requires_grad
    }
    assert frozen == {
        n for n, p in det.module_.encoder.named_parameters() if not p.requires_grad
    }


@pytest.mark.slow
def test_efficientnet_b4_encoder_fine_tuned_with_a_transposed_selu_decoder():
    """The reproduced configuration: an EfficientNet-B4 encoder (random weights
    here) whose last blocks train with a SELU transposed-convolution VAE decoder."""
    X = _smooth_images(6, size=32)
    det = ReconstructionAnomalyDetector(
        method="autoencoder",
        encoder="efficientnet_b4",
        weights=None,
        encoder_trainable=2,
        variational=True,
        decoder="transposed",
        latent_dim=4,
        depth=2,
        width=4,
        max_epochs=1,
        batch_size=3,
        device="cpu",
        random_state=0,
    ).fit(X)
    encoder = det.module_.encoder
    assert len(encoder.blocks) > 2
    assert any(
        p.requires_grad for p in encoder.get_submodule(encoder.blocks[-1]).parameters()
    )
    assert not any(
        p.requires_grad for p in encoder.get_submodule(encoder.blocks[0]).parameters()
    )
    _check_scores(det, X)
