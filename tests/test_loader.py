"""Tests of ImageLoader: formats, intensities, resize policies, errors, sklearn API."""

import io
import os
import pickle
import socket
import struct
import sys
import threading
import traceback
import warnings
import zlib
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from PIL import ExifTags, Image, ImageCms, PngImagePlugin
from sklearn.base import clone
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer
from sklearn.utils.estimator_checks import (
    check_do_not_raise_errors_in_init_or_set_params,
    check_estimator_repr,
    check_mixin_order,
    check_no_attributes_set_in_init,
    check_parameters_default_constructible,
    check_valid_tag_types,
)

from skcxr import ImageLoader
from skcxr.datasets import load_sample_images
from skcxr.preprocessing import _loader

# ImageLoader's input is one file path per sample (tags: one_d_array, string,
# two_d_array=False), so sklearn's numeric-array checks do not apply and
# parametrize_with_checks skips them; the data-free API checks run below.
COMMON_ESTIMATORS = [ImageLoader(size=16)]
EXPECTED_FAILED_CHECKS = {}


# ---------------------------------------------------------------- file makers
def _gradient(h=8, w=8, high=255, dtype=np.uint8):
    return (np.arange(h * w).reshape(h, w) * high // (h * w - 1)).astype(dtype)


def _write_dicom(
    path,
    stored,
    *,
    photometric="MONOCHROME2",
    bits_stored=12,
    slope=None,
    intercept=None,
    window=None,
    signed=False,
):
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import (
        ExplicitVRLittleEndian,
        SecondaryCaptureImageStorage,
        generate_uid,
    )

    meta = FileMetaDataset()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.Modality = "DX"
    ds.Rows, ds.Columns = stored.shape
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = photometric
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, bits_stored, bits_stored - 1
    ds.PixelRepresentation = int(signed)
    if slope is not None:
        ds.RescaleSlope, ds.RescaleIntercept = slope, intercept
    if window is not None:
        ds.WindowCenter, ds.WindowWidth = window
    ds.PixelData = np.ascontiguousarray(
        stored, dtype="<i2" if signed else "<u2"
    ).tobytes()
    ds.save_as(path, enforce_file_format=True)
    return path


def _png_claiming(path, width, height):
    """A PNG whose header declares width x height but holds one tiny row."""

    def chunk(kind, data):
        return (
            struct.pack(">I", len(data))
            + kind
            + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
        )

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    data = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr)
    data += chunk(b"IDAT", zlib.compress(b"\x00" * 16)) + chunk(b"IEND", b"")
    path.write_bytes(data)
    return path


def _load(path, **params):
    return ImageLoader(**params).fit_transform([path])[0]


# ---------------------------------------------------------------- the real sample
def test_shipped_sample_loads_as_the_contract():
    paths, y = load_sample_images()
    images = ImageLoader(size=224).fit_transform(paths)
    assert images.shape == (16, 224, 224) and images.dtype == np.float32
    assert images.min() >= 0.0 and images.max() <= 1.0
    assert 0.2 < images.mean() < 0.8  # real radiographs, not blank
    assert Counter(y.tolist()) == {"normal": 8, "bacteria": 8}
    _, y_binary = load_sample_images(labels="binary")
    assert Counter(y_binary.tolist()) == {"NORMAL": 8, "PNEUMONIA": 8}


def test_threads_and_policies_on_the_sample():
    paths, _ = load_sample_images()
    one = ImageLoader(size=32).fit_transform(paths[:6])
    two = ImageLoader(size=32, n_jobs=2).fit_transform(paths[:6])
    np.testing.assert_array_equal(one, two)
    full = ImageLoader(size=32, draft=False).fit_transform(paths[:6])
    assert np.abs(full - one).mean() < 0.02
    for resize in ("pad", "crop"):
        out = ImageLoader(size=32, resize=resize, n_jobs=-1).fit_transform(paths[:2])
        assert out.shape == (2, 32, 32)
    assert ImageLoader(size=8, layout="flat").transform(paths[:2]).shape == (2, 64)
    assert ImageLoader(size=8, layout="n1hw").transform(paths[:2]).shape == (2, 1, 8, 8)


# ---------------------------------------------------------------- intensities
def test_8bit_png_exact(tmp_path):
    pixels = _gradient()
    Image.fromarray(pixels).save(tmp_path / "a.png")
    out = _load(tmp_path / "a.png", size=8)
    np.testing.assert_allclose(out, pixels / 255.0, atol=1e-7)


def test_16bit_png_maps_full_range(tmp_path):
    pixels = np.array([[0, 32768], [65535, 16384]], dtype=np.uint16)
    Image.fromarray(pixels).save(tmp_path / "a.png")
    with Image.open(tmp_path / "a.png") as im:
        assert im.mode.startswith("I")
    out = _load(tmp_path / "a.png", size=2)
    np.testing.assert_allclose(
        out, [[0.0, 32768 / 65535], [1.0, 16384 / 65535]], atol=1e-6
    )


@settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(arrays(np.uint16, (4, 4), elements=st.integers(0, 65535)))
def test_16bit_png_round_trip_property(tmp_path, pixels):
    Image.fromarray(pixels).save(tmp_path / "p.png")
    out = _load(tmp_path / "p.png", size=4)
    np.testing.assert_allclose(out, pixels / 65535.0, atol=1e-6)


def test_rgba_is_composited_over_black(tmp_path):
    rgba = np.zeros((2, 2, 4), dtype=np.uint8)
    rgba[..., :3] = [[[200, 200, 200]]]
    rgba[..., 3] = [[255, 0], [128, 255]]
    rgba[1, 1, :3] = [255, 0, 0]  # red: ITU-R 601 luma 76
    Image.fromarray(rgba, "RGBA").save(tmp_path / "a.png")
    out = _load(tmp_path / "a.png", size=2)
    np.testing.assert_allclose(
        out, [[200 / 255, 0.0], [100 / 255, 76 / 255]], atol=1.5 / 255
    )


def test_la_and_rgb_and_bilevel(tmp_path):
    la = np.stack([np.full((2, 2), 100, np.uint8), np.full((2, 2), 255, np.uint8)], -1)
    Image.fromarray(la, "LA").save(tmp_path / "la.png")
    np.testing.assert_allclose(_load(tmp_path / "la.png", size=2), 100 / 255, atol=1e-6)
    rgb = np.zeros((2, 2, 3), np.uint8)
    rgb[..., 1] = 255
    Image.fromarray(rgb).save(tmp_path / "rgb.png")
    np.testing.assert_allclose(
        _load(tmp_path / "rgb.png", size=2), 150 / 255, atol=1e-6
    )
    Image.new("1", (2, 2), 1).save(tmp_path / "bw.png")
    np.testing.assert_allclose(_load(tmp_path / "bw.png", size=2), 1.0)


def test_palette_png(tmp_path):
    im = Image.new("P", (2, 2))
    im.putpalette([0, 0, 0, 255, 255, 255, 0, 0, 255] + [0] * 759)
    im.putdata([0, 1, 2, 1])
    im.save(tmp_path / "p.png")
    out = _load(tmp_path / "p.png", size=2)
    np.testing.assert_allclose(out, [[0, 1], [29 / 255, 1]], atol=1e-6)
    im.save(tmp_path / "pt.png", transparency=1)  # palette entry 1 transparent
    out = _load(tmp_path / "pt.png", size=2)
    np.testing.assert_allclose(out, [[0, 0], [29 / 255, 0]], atol=1e-6)


def test_tiff_8_and_16_bit(tmp_path):
    Image.fromarray(_gradient()).save(tmp_path / "a.tif")
    np.testing.assert_allclose(
        _load(tmp_path / "a.tif", size=8), _gradient() / 255, atol=1e-7
    )
    pixels = _gradient(high=65535, dtype=np.uint16)
    Image.fromarray(pixels).save(tmp_path / "b.tiff")
    np.testing.assert_allclose(
        _load(tmp_path / "b.tiff", size=8), pixels / 65535, atol=1e-6
    )


def test_float_tiff_in_and_out_of_range(tmp_path):
    Image.fromarray(np.full((4, 4), 0.25, np.float32), "F").save(tmp_path / "f.tif")
    np.testing.assert_allclose(_load(tmp_path / "f.tif", size=4), 0.25)
    Image.fromarray(np.full((4, 4), 7.0, np.float32), "F").save(tmp_path / "g.tif")
    with pytest.raises(ValueError, match=r"g\.tif.*range"):
        _load(tmp_path / "g.tif", size=4)


def test_jpeg_close_to_source_with_and_without_draft(tmp_path):
    yy, xx = np.mgrid[0:512, 0:512]
    pixels = (127 + 100 * np.sin(xx / 40) * np.cos(yy / 60)).astype(np.uint8)
    Image.fromarray(pixels).save(tmp_path / "a.jpeg", quality=95)
    expected = np.asarray(Image.fromarray(pixels).resize((64, 64)), np.float32) / 255
    for draft in (True, False):
        out = _load(tmp_path / "a.jpeg", size=64, draft=draft)
        assert np.abs(out - expected).mean() < 0.01


def test_dicom_monochrome2_bits_stored_and_rescale(tmp_path):
    stored = np.array([[0, 2048], [4095, 1024]], dtype=np.uint16)
    stored_dirty = stored | 0xF000  # garbage above BitsStored must be dropped
    path = _write_dicom(tmp_path / "m2.dcm", stored_dirty, slope=2.0, intercept=-1024.0)
    out = _load(path, size=2)
    np.testing.assert_allclose(out, stored / 4095.0, atol=1e-6)


def test_dicom_signed_pixels(tmp_path):
    stored = np.array([[-2048, 0], [2047, -1024]], dtype=np.int16)
    path = _write_dicom(
        tmp_path / "s.dcm", stored, signed=True, slope=1.0, intercept=-1000.0
    )
    out = _load(path, size=2)
    np.testing.assert_allclose(out, (stored + 2048) / 4095.0, atol=1e-6)


def test_dicom_monochrome1_is_inverted_and_found_without_suffix(tmp_path):
    stored = np.array([[0, 2048], [4095, 1024]], dtype=np.uint16)
    path = _write_dicom(
        tmp_path / "image_without_suffix", stored, photometric="MONOCHROME1"
    )
    out = _load(path, size=2)
    np.testing.assert_allclose(out, 1.0 - stored / 4095.0, atol=1e-6)


def test_palette_dicom_is_the_luminance_of_its_colour_table():
    import pydicom
    from pydicom.data import get_testdata_file
    from pydicom.pixels import apply_color_lut

    path = get_testdata_file("examples_palette.dcm")
    ds = pydicom.dcmread(path)
    rgb = apply_color_lut(ds.pixel_array, ds).astype(np.float64)
    depth = 2 ** int(ds.RedPaletteColorLookupTableDescriptor[2]) - 1
    expected = rgb @ [0.299, 0.587, 0.114] / depth
    out = _load(path, size=max(ds.Rows, ds.Columns), resize="pad")
    top = (ds.Columns - ds.Rows) // 2  # the pad adds rows above and below
    np.testing.assert_allclose(out[top : top + ds.Rows], expected, atol=1e-3)
    assert np.abs(out[top : top + ds.Rows] - ds.pixel_array / 255).max() > 0.1


def test_dicom_header_errors_name_the_attribute(tmp_path):
    from pydicom import dcmread
    from pydicom.dataelem import DataElement

    stored = np.array([[0, 2048], [4095, 1024]], dtype=np.uint16)
    path = _write_dicom(tmp_path / "zero.dcm", stored, slope=0.0, intercept=0.0)
    with pytest.raises(ValueError, match="zero.dcm.*RescaleSlope is 0"):
        _load(path, size=2)
    path = _write_dicom(tmp_path / "frames.dcm", stored)
    ds = dcmread(path)
    ds["NumberOfFrames"] = DataElement(0x00280008, "LO", "1A")
    ds.save_as(path)
    with pytest.raises(ValueError, match="NumberOfFrames is '1A', not an integer"):
        _load(path, size=2)


def test_dicom_window_is_applied(tmp_path):
    stored = np.array([[0, 1000], [1500, 4095]], dtype=np.uint16)
    path = _write_dicom(tmp_path / "w.dcm", stored, window=(1500, 1000))
    out = _load(path, size=2)
    assert out[0, 0] == 0.0 and out[0, 1] < 0.01  # at or below the window
    assert out[1, 1] == 1.0
    assert abs(out[1, 0] - 0.5) < 0.01  # the window centre


# ---------------------------------------------------------------- resize policies
def test_resize_policies_geometry(tmp_path):
    wide = np.zeros((16, 32), np.uint8)
    wide[:, 16:] = 255  # left half black, right half white
    Image.fromarray(wide).save(tmp_path / "wide.png")
    pad = _load(tmp_path / "wide.png", size=16, resize="pad")
    assert np.all(pad[:4] == 0) and np.all(pad[-4:] == 0)  # black bands
    assert pad[8, -1] == 1.0 and pad[8, 0] == 0.0
    crop = _load(tmp_path / "wide.png", size=16, resize="crop")  # columns 8..24
    assert crop[:, :7].max() == 0.0 and crop[:, 9:].min() == 1.0
    square = _load(tmp_path / "wide.png", size=16)
    assert square[:, :7].max() == 0.0 and square[:, 9:].min() == 1.0

    tall = np.zeros((32, 16), np.uint8)
    tall[16:] = 255  # bottom half white
    Image.fromarray(tall).save(tmp_path / "tall.png")
    lower = _load(
        tmp_path / "tall.png", size=8, resize="region", region=(0.5, 1.0, 0.0, 1.0)
    )
    np.testing.assert_allclose(lower, 1.0)
    upper = _load(
        tmp_path / "tall.png", size=8, resize="region", region=[0.0, 0.5, 0.0, 1.0]
    )
    np.testing.assert_allclose(upper, 0.0)


@pytest.mark.parametrize(
    "params, match",
    [
        ({"resize": "region"}, "region"),
        ({"resize": "region", "region": (0.5, 0.4, 0.0, 1.0)}, "region"),
        ({"resize": "region", "region": (0.0, 1.0)}, "region"),
        ({"size": 0}, "size"),
        ({"resize": "stretch"}, "resize"),
        ({"on_error": "ignore"}, "on_error"),
        ({"max_pixels": 0}, "max_pixels"),
    ],
)
def test_bad_parameters(params, match):
    paths, _ = load_sample_images()
    with pytest.raises(ValueError, match=match):
        ImageLoader(**params).fit(paths[:1])


# ---------------------------------------------------------------- errors
@pytest.fixture
def bad_files(tmp_path):
    rng = np.random.default_rng(0)
    (tmp_path / "corrupt.png").write_bytes(rng.bytes(2000))
    Image.fromarray(_gradient(256, 256)).save(tmp_path / "full.jpeg")
    data = (tmp_path / "full.jpeg").read_bytes()
    (tmp_path / "truncated.jpeg").write_bytes(data[: len(data) // 2])
    (tmp_path / "notes.txt").write_text("not an image\n" * 20)
    (tmp_path / "folder.png").mkdir()
    return {
        "corrupt": tmp_path / "corrupt.png",
        "truncated": tmp_path / "truncated.jpeg",
        "text": tmp_path / "notes.txt",
        "missing": tmp_path / "missing.png",
        "directory": tmp_path / "folder.png",
        "bad_dicom": (
            tmp_path / "x.dcm",
            tmp_path.joinpath("x.dcm").write_bytes(b"0" * 300),
        )[0],
    }


@pytest.mark.parametrize(
    "kind", ["corrupt", "truncated", "text", "missing", "directory", "bad_dicom"]
)
@pytest.mark.parametrize("n_jobs", [1, 2])
def test_unreadable_file_raises_naming_it(bad_files, kind, n_jobs):
    paths, _ = load_sample_images()
    X = [paths[0], bad_files[kind], paths[1]]
    with pytest.raises(ValueError, match=bad_files[kind].name):
        ImageLoader(size=16, n_jobs=n_jobs).fit_transform(X)


def test_decompression_bomb_refused_before_decoding(tmp_path):
    bomb = _png_claiming(tmp_path / "bomb.png", 100_000, 100_000)
    with pytest.raises(ValueError, match="bomb.png"):
        _load(bomb, size=16)
    mid = _png_claiming(tmp_path / "mid.png", 8000, 8000)  # 64 Mpx: above the default
    with pytest.raises(ValueError, match=r"mid\.png.*max_pixels=50000000"):
        _load(mid, size=16)
    Image.fromarray(_gradient(20, 20)).save(tmp_path / "small.png")
    with pytest.raises(ValueError, match=r"small\.png.*400 pixels.*max_pixels=100"):
        _load(tmp_path / "small.png", size=16, max_pixels=100)
    assert _load(tmp_path / "small.png", size=16, max_pixels=None).shape == (16, 16)


def test_dicom_bomb_checked_from_header(tmp_path):
    path = _write_dicom(tmp_path / "big.dcm", np.zeros((20, 20), np.uint16))
    with pytest.raises(ValueError, match=r"big\.dcm.*max_pixels"):
        _load(path, size=4, max_pixels=100)


def _logistic_pipeline(**loader_params):
    from sklearn.linear_model import LogisticRegression

    flatten = FunctionTransformer(lambda X: X.reshape(len(X), -1))
    loader = ImageLoader(size=8, **loader_params)
    return Pipeline(
        [("load", loader), ("flat", flatten), ("clf", LogisticRegression())]
    )


@pytest.mark.parametrize("on_error", ["skip", "warn"])
def test_pipeline_predict_and_score_never_drop_rows(bad_files, on_error):
    paths, y = load_sample_images()
    pipe = _logistic_pipeline(on_error=on_error).fit(paths, y)
    X = [paths[0], paths[8], bad_files["missing"]]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # an error, not a warning and fewer rows
        for method, args in [
            (pipe.predict, ()),
            (pipe.score, (y[:3],)),
            (pipe[:-1].transform, ()),
        ]:
            with pytest.raises(ValueError, match=r"missing\.png.*load\(X, y\)"):
                method(X, *args)
    assert pipe.predict(X[:2]).shape == (2,)


def test_transform_lists_every_unreadable_file(bad_files):
    paths, y = load_sample_images()
    X = [paths[0], bad_files["corrupt"], paths[8], bad_files["missing"]]
    loader = ImageLoader(size=16, on_error="skip")
    with pytest.raises(ValueError, match=r"2 of 4.*corrupt\.png.*missing\.png"):
        loader.transform(X)
    for labels in (None, y[:4]):  # fit_transform, as Pipeline.fit calls it
        with pytest.raises(ValueError, match=r"corrupt\.png.*misalign"):
            loader.fit_transform(X, labels)
    with pytest.raises(ValueError, match=r"corrupt\.png") as raised:
        ImageLoader(size=16).transform(X)  # "raise": stops at the first file
    assert "missing.png" not in str(raised.value)
    assert not hasattr(loader, "kept_indices_")  # transform keeps no record


def test_load_skips_files_with_their_targets(bad_files):
    paths, y = load_sample_images()
    X = [paths[0], bad_files["corrupt"], paths[8], bad_files["missing"]]
    labels = np.array([y[0], "virus", y[8], "virus"])

    loader = ImageLoader(size=16, on_error="skip")
    images, y_kept = loader.load(X, labels)
    assert images.shape == (2, 16, 16)
    assert y_kept.tolist() == ["normal", "bacteria"]
    np.testing.assert_array_equal(loader.kept_indices_, [0, 2])
    assert loader.failed_paths_ == [
        str(bad_files["corrupt"]),
        str(bad_files["missing"]),
    ]
    assert len(loader.errors_) == 2 and "no such file" in loader.errors_[1]
    np.testing.assert_array_equal(
        images, ImageLoader(size=16).transform(np.asarray(X)[loader.kept_indices_])
    )

    with pytest.warns(UserWarning, match=r"skipped 2 of 4.*corrupt\.png"):
        images, y_kept = ImageLoader(size=16, on_error="warn").load(X, labels)
    assert images.shape[0] == len(y_kept) == 2

    with pytest.raises(ValueError, match=r"corrupt\.png"):
        ImageLoader(size=16).load(X, labels)  # "raise"
    with pytest.raises(ValueError, match="None of the 2 files"):
        ImageLoader(size=16, on_error="skip").load(
            [bad_files["corrupt"], bad_files["text"]]
        )
    with pytest.raises(ValueError, match="targets"):
        ImageLoader(size=16).load(X, labels[:2])


def test_load_resets_the_record(bad_files):
    paths, y = load_sample_images()
    loader = ImageLoader(size=8, on_error="skip")
    loader.load([paths[0], bad_files["text"]])
    assert loader.failed_paths_ == [str(bad_files["text"])]
    loader.load(paths[:3], y[:3])
    assert loader.failed_paths_ == [] and loader.kept_indices_.tolist() == [0, 1, 2]
    with pytest.raises(ValueError, match="None of the 1 files"):
        loader.load([bad_files["text"]])
    assert loader.failed_paths_ == [str(bad_files["text"])]  # this call's record
    assert loader.kept_indices_.tolist() == []
    with pytest.raises(ValueError, match=r"notes\.txt"):
        ImageLoader(size=8).set_params(on_error="raise").load([bad_files["text"]])
    loader.set_params(on_error="raise")
    with pytest.raises(ValueError, match=r"notes\.txt"):
        loader.load([paths[0], bad_files["text"]])
    assert not hasattr(loader, "kept_indices_")  # no stale record after an error


@pytest.mark.filterwarnings("ignore:One or more of the test scores are non-finite")
@pytest.mark.parametrize("fold", ["train", "test"])
def test_bad_file_in_one_cv_fold_is_named(bad_files, fold):
    from sklearn.exceptions import FitFailedWarning
    from sklearn.model_selection import GridSearchCV

    paths, y = load_sample_images()  # rows 0-7 normal, 8-15 bacteria
    X = list(paths)
    X[3] = bad_files["missing"]
    clean = ([0, 1, 2, 8, 9, 10], [4, 5, 12, 13])
    if fold == "train":
        bad, expected = ([3, 4, 5, 11, 12, 13], [0, 1, 8, 9]), FitFailedWarning
    else:
        bad, expected = ([0, 1, 8, 9], [3, 4, 11, 12]), UserWarning
    grid = {"clf__C": [1.0]}
    pipe = _logistic_pipeline(on_error="skip")
    # scikit-learn's default error_score=np.nan: a NaN score and a warning
    with pytest.warns(expected, match=r"missing\.png"):
        search = GridSearchCV(pipe, grid, cv=[clean, bad], refit=False).fit(X, y)
    assert np.isfinite(search.cv_results_["split0_test_score"][0])
    assert np.isnan(search.cv_results_["split1_test_score"][0])
    # the documented advice: error_score="raise" stops with the file's name
    search.set_params(error_score="raise")
    with pytest.raises(ValueError, match=r"missing\.png"):
        search.fit(X, y)


# ---------------------------------------------------------------- special files
def _read_with_deadline(path, seconds=20):
    """Read in a daemon thread, so a loader that blocks fails instead of hanging."""
    result = {}

    def target():
        try:
            result["out"] = ImageLoader(size=4).transform([path])
        except Exception as exc:  # noqa: BLE001 - returned to the test
            result["error"] = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), f"reading {path} blocked"
    return result


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no named pipes")
def test_fifo_is_refused_without_blocking(tmp_path):
    os.mkfifo(tmp_path / "pipe.png")
    error = _read_with_deadline(tmp_path / "pipe.png")["error"]
    assert isinstance(error, ValueError)
    assert "pipe.png" in str(error) and "named pipe" in str(error)


@pytest.mark.skipif(not hasattr(socket, "AF_UNIX"), reason="no unix sockets")
def test_socket_device_and_directory_are_refused(tmp_path):
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        server.bind(str(tmp_path / "s.png"))
        error = _read_with_deadline(tmp_path / "s.png")["error"]
    finally:
        server.close()
    assert "s.png" in str(error) and "socket" in str(error)
    (tmp_path / "folder.dcm").mkdir()
    error = _read_with_deadline(tmp_path / "folder.dcm")["error"]
    assert "folder.dcm" in str(error) and "directory" in str(error)
    if os.path.exists(os.devnull) and os.devnull == "/dev/null":
        error = _read_with_deadline(os.devnull)["error"]
        assert "/dev/null" in str(error) and "character device" in str(error)


# ---------------------------------------------------------------- EXIF orientation
def _exif(orientation):
    exif = Image.Exif()
    exif[ExifTags.Base.Orientation] = orientation
    return exif


def test_exif_orientation_is_applied_to_jpeg(tmp_path):
    pixels = np.zeros((32, 32), np.uint8)
    pixels[:8] = 255  # a white band at the top of the stored pixels
    Image.fromarray(pixels).save(tmp_path / "phone.jpeg", exif=_exif(6), quality=95)
    upright = _load(tmp_path / "phone.jpeg", size=32)
    stored = _load(tmp_path / "phone.jpeg", size=32, exif_transpose=False)
    assert stored[:4].mean() > 0.9 and upright[:, -4:].mean() > 0.9  # now at right
    np.testing.assert_array_equal(upright, np.rot90(stored, k=-1))  # 90 deg clockwise

    wide = np.full((16, 64), 200, np.uint8)  # stored landscape, shown portrait
    Image.fromarray(wide).save(tmp_path / "wide.jpeg", exif=_exif(8), quality=95)
    padded = _load(tmp_path / "wide.jpeg", size=16, resize="pad")
    assert padded[:, :4].max() < 0.05 and padded[:, -4:].max() < 0.05  # side bands
    assert abs(padded[8, 8] - 200 / 255) < 0.02


def test_exif_orientation_with_draft_and_other_formats(tmp_path):
    yy, xx = np.mgrid[0:256, 0:512]
    pixels = (127 + 100 * np.sin(xx / 40) * np.cos(yy / 60)).astype(np.uint8)
    Image.fromarray(pixels).save(tmp_path / "big.jpeg", exif=_exif(5), quality=95)
    lower = {"size": 32, "resize": "region", "region": (0.5, 1.0, 0.0, 0.5)}
    drafted = _load(tmp_path / "big.jpeg", **lower)
    full = _load(tmp_path / "big.jpeg", draft=False, **lower)
    assert np.abs(drafted - full).mean() < 0.01  # draft size follows the rotation

    tall = _gradient(8, 4, high=65535, dtype=np.uint16)
    Image.fromarray(tall).save(tmp_path / "t.tif", tiffinfo={274: 3})  # 180 deg
    np.testing.assert_allclose(
        _load(tmp_path / "t.tif", size=4, resize="crop"),
        tall[::-1, ::-1][2:6] / 65535,
        atol=1e-6,
    )
    Image.fromarray(_gradient()).save(tmp_path / "m.png", exif=_exif(2))  # mirrored
    np.testing.assert_allclose(
        _load(tmp_path / "m.png", size=8), _gradient()[:, ::-1] / 255, atol=1e-7
    )


# ---------------------------------------------------------------- what a file is
def test_format_comes_from_content_not_name(tmp_path):
    Image.fromarray(_gradient()).save(tmp_path / "a.png")
    (tmp_path / "png_named.dcm").write_bytes((tmp_path / "a.png").read_bytes())
    np.testing.assert_array_equal(
        _load(tmp_path / "png_named.dcm", size=8), _load(tmp_path / "a.png", size=8)
    )
    stored = np.array([[0, 4095], [2048, 1024]], dtype=np.uint16)
    _write_dicom(tmp_path / "dicom_named.png", stored)
    np.testing.assert_allclose(
        _load(tmp_path / "dicom_named.png", size=2), stored / 4095, atol=1e-6
    )


@pytest.mark.parametrize(
    "name, content, match",
    [
        ("notes.dcm", b"0" * 300, r"notes\.dcm.*not a DICOM file.*DICM.*text"),
        ("page.png", b"<!DOCTYPE html><p>Not found</p>", r"page\.png.*HTML page"),
        ("empty.jpg", b"", r"empty\.jpg.*empty \(0 bytes\)"),
        ("archive.dcm", b"PK\x03\x04" + b"\x00" * 200, r"archive\.dcm.*ZIP"),
        ("noise.png", bytes(range(256)) * 4, r"noise\.png.*not a known image"),
    ],
)
def test_error_says_what_the_file_is(tmp_path, name, content, match):
    (tmp_path / name).write_bytes(content)
    with pytest.raises(ValueError, match=match) as raised:
        _load(tmp_path / name, size=4)
    assert "no pixel data" not in str(raised.value)


def test_messages_hide_internal_names(bad_files):
    for kind in ("corrupt", "missing", "bad_dicom", "directory"):
        for on_error in ("raise", "skip"):
            with pytest.raises(ValueError) as raised:
                ImageLoader(size=4, on_error=on_error).transform([bad_files[kind]])
            error = raised.value
            shown = (
                str(error) + repr(error) + "".join(traceback.format_exception(error))
            )
            assert type(error) is ValueError and bad_files[kind].name in str(error)
            assert "_ReadError" not in shown and "_Failure" not in shown
            assert "\n" not in str(error)


def test_dicom_header_and_pixel_data_problems(tmp_path):
    import pydicom

    path = _write_dicom(tmp_path / "ok.dcm", np.zeros((4, 4), np.uint16))
    ds = pydicom.dcmread(path)
    del ds.Rows
    ds.save_as(tmp_path / "no_rows.dcm")
    with pytest.raises(ValueError, match=r"no_rows\.dcm.*lacks Rows") as raised:
        _load(tmp_path / "no_rows.dcm", size=4)
    assert "AttributeError" not in str(raised.value)
    ds = pydicom.dcmread(path)
    del ds.PixelData
    ds.save_as(tmp_path / "no_pixels.dcm")
    with pytest.raises(ValueError, match=r"no_pixels\.dcm.*DICOM file has no pixel"):
        _load(tmp_path / "no_pixels.dcm", size=4)


def test_compressed_dicom_without_decoder_is_one_line(tmp_path):
    import pydicom
    from pydicom.encaps import encapsulate
    from pydicom.pixels import get_decoder
    from pydicom.uid import JPEGLSLossless

    ds = pydicom.dcmread(_write_dicom(tmp_path / "a.dcm", np.zeros((4, 4), np.uint16)))
    ds.file_meta.TransferSyntaxUID = JPEGLSLossless
    ds.PixelData = encapsulate([b"\xff\xd8\xff\xf7" + b"\x00" * 40])
    ds["PixelData"].VR = "OB"
    ds.save_as(tmp_path / "ls.dcm")
    with pytest.raises(ValueError, match=r"ls\.dcm.*JPEG-LS") as raised:
        _load(tmp_path / "ls.dcm", size=4)
    message = str(raised.value)
    assert "\n" not in message and "\t" not in message
    if not get_decoder(JPEGLSLossless).is_available:
        assert "pip install pylibjpeg pylibjpeg-libjpeg" in message
        assert "python-gdcm" in message


def test_n_jobs_capped_by_files_and_cpus(monkeypatch):
    from skcxr.preprocessing import _loader
    from skcxr.utils._parallel import available_cpus

    workers = []

    class CountingExecutor(ThreadPoolExecutor):
        def __init__(self, max_workers):
            workers.append(max_workers)
            super().__init__(max_workers=max_workers)

    monkeypatch.setattr(_loader, "ThreadPoolExecutor", CountingExecutor)
    paths, _ = load_sample_images()
    out = ImageLoader(size=8, n_jobs=10_000).transform(paths[:3])
    np.testing.assert_array_equal(out, ImageLoader(size=8).transform(paths[:3]))
    expected = min(3, available_cpus())  # not 10,000 threads
    assert workers == ([expected] if expected > 1 else [])
    ImageLoader(size=8, n_jobs=10_000).transform(paths[:1])
    ImageLoader(size=8, n_jobs=-1).transform(paths[:1])
    assert len(workers) == (expected > 1)  # one file: no thread pool at all


# ---------------------------------------------------------------- input validation
def test_accepted_path_containers():
    paths, _ = load_sample_images()
    loader = ImageLoader(size=8)
    ref = loader.transform(paths[:2])
    np.testing.assert_array_equal(loader.transform([Path(p) for p in paths[:2]]), ref)
    np.testing.assert_array_equal(loader.transform(np.asarray(paths[:2])[:, None]), ref)
    np.testing.assert_array_equal(loader.transform(tuple(paths[:2])), ref)


@pytest.mark.parametrize(
    "X, match",
    [
        ("one.png", "single path"),
        ([], "at least one"),
        (np.zeros((3, 4)), "shape"),
        (np.zeros(3), "file paths"),
        ([["a.png", "b.png"]], "shape"),
        ([None], "file paths"),
    ],
)
def test_bad_X(X, match):
    with pytest.raises(ValueError, match=match):
        ImageLoader().fit(X)
    with pytest.raises(ValueError, match=match):
        ImageLoader().transform(X)


# ---------------------------------------------------------------- sklearn API
@pytest.mark.parametrize(
    "check",
    [
        check_no_attributes_set_in_init,
        check_estimator_repr,
        check_do_not_raise_errors_in_init_or_set_params,
        check_mixin_order,
        check_valid_tag_types,
        check_parameters_default_constructible,
    ],
)
def test_data_free_sklearn_checks(check):
    check("ImageLoader", ImageLoader(size=16))


def test_stateless_fit_clone_pickle_and_tags():
    paths, _ = load_sample_images()
    loader = ImageLoader(size=8, resize="pad", n_jobs=2)
    assert loader.fit(paths[:2]) is loader
    assert not hasattr(loader, "n_features_in_")
    again = pickle.loads(pickle.dumps(loader))
    np.testing.assert_array_equal(
        again.transform(paths[:2]), clone(loader).transform(paths[:2])
    )
    tags = loader.__sklearn_tags__()
    assert tags.input_tags.string and not tags.input_tags.two_d_array
    assert not tags.requires_fit


def test_in_sklearn_and_imblearn_pipelines():
    from imblearn.pipeline import Pipeline as ImbPipeline
    from sklearn.linear_model import LogisticRegression

    paths, y = load_sample_images()
    flatten = FunctionTransformer(lambda X: X.reshape(len(X), -1))
    for pipeline_class in (Pipeline, ImbPipeline):
        pipe = pipeline_class(
            [
                ("load", ImageLoader(size=8)),
                ("flat", flatten),
                ("clf", LogisticRegression()),
            ]
        )
        pipe.fit(paths, y)
        assert pipe.predict(paths[:3]).shape == (3,)
    pipe.set_params(load__size=4).fit(paths, y)
    assert pipe.named_steps["clf"].n_features_in_ == 16


def test_does_not_touch_pil_global_limit(tmp_path):
    before = Image.MAX_IMAGE_PIXELS
    _png_claiming(tmp_path / "bomb.png", 100_000, 100_000)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(ValueError):
            _load(tmp_path / "bomb.png", size=4, max_pixels=None)
    assert Image.MAX_IMAGE_PIXELS == before


def test_dicom_voi_lut_sequence_is_applied(tmp_path):
    from pydicom.dataset import Dataset
    from pydicom.sequence import Sequence

    path = _write_dicom(tmp_path / "lut.dcm", np.array([[0, 1], [2, 3]], np.uint16))
    import pydicom

    ds = pydicom.dcmread(path)
    item = Dataset()
    item.LUTDescriptor = [4, 0, 8]  # 4 entries, first stored value 0, 8-bit output
    item.add_new("LUTData", "US", [0, 255, 128, 64])
    ds.VOILUTSequence = Sequence([item])
    ds.WindowCenter, ds.WindowWidth = 1, 1  # the LUT takes precedence
    ds.save_as(path, enforce_file_format=True)
    out = _load(path, size=2)
    np.testing.assert_allclose(out, [[0, 1], [128 / 255, 64 / 255]], atol=1e-6)


# ---------------------------------------------------------------- fast PNG decoding
class _PillowAsOpenCV:
    """Stands in for OpenCV's ``cv2``: decodes with Pillow, counts the calls."""

    IMREAD_UNCHANGED = -1
    error = RuntimeError

    def __init__(self, result="decode"):
        self.calls = 0
        self.result = result

    def imdecode(self, buf, flags):
        self.calls += 1
        if self.result == "fail":
            return None
        if self.result == "raise":
            raise self.error("bad PNG")
        with Image.open(io.BytesIO(buf.tobytes())) as im:
            return np.asarray(im)


@pytest.fixture
def fake_opencv(monkeypatch):
    fake = _PillowAsOpenCV()
    monkeypatch.setattr(_loader, "_cv2", fake)
    return fake


def _pillow_only(monkeypatch, paths, **params):
    with monkeypatch.context() as m:
        m.setattr(_loader, "_cv2", None)
        return ImageLoader(**params).transform(paths)


def _texture(h, w, high=255, dtype=np.uint8, seed=0):
    yy, xx = np.mgrid[0:h, 0:w]
    noise = np.random.default_rng(seed).random((h, w))
    smooth = 0.5 + 0.3 * np.sin(xx / 7.0) * np.cos(yy / 11.0) + 0.2 * noise
    return (np.clip(smooth, 0, 1) * high).astype(dtype)


def _ancillary_png(path, pixels):
    """PNGs with chunks that change no pixel (gAMA, cHRM, iCCP, pHYs, tIME; sRGB)."""
    info = PngImagePlugin.PngInfo()
    info.add(b"gAMA", struct.pack(">I", 45455))
    info.add(b"cHRM", struct.pack(">8I", *(31270, 32900, 64000, 33000) * 2))
    info.add(b"tIME", struct.pack(">HBBBBB", 2017, 9, 1, 12, 0, 0))
    profile = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    Image.fromarray(pixels).save(path, pnginfo=info, dpi=(72, 72), icc_profile=profile)
    srgb = PngImagePlugin.PngInfo()
    srgb.add(b"sRGB", b"\x00")  # Pillow leaves it out next to an ICC profile
    Image.fromarray(pixels).save(path.with_suffix(".srgb.png"), pnginfo=srgb)
    with Image.open(path) as im, Image.open(path.with_suffix(".srgb.png")) as im2:
        assert {"gamma", "chromaticity", "icc_profile", "dpi"} <= set(im.info)
        assert "srgb" in im2.info
    return [str(path), str(path.with_suffix(".srgb.png"))]


@pytest.mark.parametrize("resize", ["square", "pad", "region"])
def test_fast_png_path_gives_pillow_pixels(tmp_path, monkeypatch, fake_opencv, resize):
    files = {
        "8bit.png": _texture(56, 40),
        "16bit.png": _texture(40, 56, high=65535, dtype=np.uint16),
    }
    for name, pixels in files.items():
        Image.fromarray(pixels).save(tmp_path / name)
    paths = [str(tmp_path / name) for name in files]
    paths += _ancillary_png(tmp_path / "chunks.png", _texture(48, 48, seed=1))
    params = {"size": 8, "resize": resize, "region": (0.2, 1.0, 0.0, 0.9)}
    fast = ImageLoader(**params, n_jobs=2).transform(paths)
    assert fake_opencv.calls == 4  # every file took the fast path
    np.testing.assert_array_equal(fast, _pillow_only(monkeypatch, paths, **params))


def test_real_opencv_gives_pillow_pixels(tmp_path, monkeypatch):
    cv2 = pytest.importorskip("cv2")
    calls = []

    def imdecode(buf, flags):
        calls.append(flags)
        return cv2.imdecode(buf, flags)

    spy = SimpleNamespace(
        imdecode=imdecode, IMREAD_UNCHANGED=cv2.IMREAD_UNCHANGED, error=cv2.error
    )
    monkeypatch.setattr(_loader, "_cv2", spy)
    Image.fromarray(_texture(300, 260)).save(tmp_path / "8bit.png")
    Image.fromarray(_texture(64, 80, 65535, np.uint16)).save(tmp_path / "16bit.png")
    paths = [str(tmp_path / n) for n in ("8bit.png", "16bit.png")]
    paths += _ancillary_png(tmp_path / "chunks.png", _texture(128, 128, seed=2))
    for size in (64, 300):  # reduced then resized; enlarged
        fast = ImageLoader(size=size).transform(paths)
        np.testing.assert_array_equal(fast, _pillow_only(monkeypatch, paths, size=size))
    assert len(calls) == 8
    Image.fromarray(_gradient()).save(tmp_path / "m.png", exif=_exif(2))  # mirrored
    stored = _load(tmp_path / "m.png", size=8, exif_transpose=False)
    assert len(calls) == 9  # OpenCV must keep the stored pixel order, as Pillow
    np.testing.assert_allclose(stored, _gradient() / 255, atol=1e-7)


def test_png_decoder_is_optional(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "cv2", None)  # import cv2 -> ImportError
    monkeypatch.setattr(_loader, "_cv2", _loader._NOT_IMPORTED)
    assert _loader._png_decoder() is None
    pixels = _gradient()
    Image.fromarray(pixels).save(tmp_path / "a.png")
    np.testing.assert_allclose(
        _load(tmp_path / "a.png", size=8), pixels / 255, atol=1e-7
    )
    assert _loader._cv2 is None  # the failed import is remembered, not retried


def test_fast_path_leaves_other_pngs_to_pillow(tmp_path, fake_opencv):
    Image.fromarray(_gradient()).save(tmp_path / "m.png", exif=_exif(2))  # mirrored
    np.testing.assert_allclose(
        _load(tmp_path / "m.png", size=8), _gradient()[:, ::-1] / 255, atol=1e-7
    )
    assert fake_opencv.calls == 0  # the orientation is Pillow's to apply
    np.testing.assert_allclose(
        _load(tmp_path / "m.png", size=8, exif_transpose=False),
        _gradient() / 255,
        atol=1e-7,
    )
    assert fake_opencv.calls == 1  # orientation ignored: fast path again

    xmp = '<x:xmpmeta><rdf:Description tiff:Orientation="2"/></x:xmpmeta>'
    for name, keyword, text in [
        ("xmp.png", "XML:com.adobe.xmp", xmp),  # an orientation: Pillow's
        ("text.png", "Software", "a scanner"),  # no orientation: fast path
    ]:
        info = PngImagePlugin.PngInfo()
        info.add_itxt(keyword, text)
        Image.fromarray(_gradient()).save(tmp_path / name, pnginfo=info)
    np.testing.assert_allclose(
        _load(tmp_path / "xmp.png", size=8), _gradient()[:, ::-1] / 255, atol=1e-7
    )
    assert fake_opencv.calls == 1
    np.testing.assert_allclose(
        _load(tmp_path / "text.png", size=8), _gradient() / 255, atol=1e-7
    )
    assert fake_opencv.calls == 2

    gray = np.full((8, 8), 100, np.uint8)
    Image.fromarray(gray).save(tmp_path / "trns.png", transparency=100)
    Image.fromarray(np.stack([gray] * 3, axis=-1)).save(tmp_path / "rgb.png")
    Image.fromarray(_texture(64, 64)).save(tmp_path / "whole.png")
    data = (tmp_path / "whole.png").read_bytes()
    (tmp_path / "cut.png").write_bytes(data[: len(data) // 2])
    for name in ("trns.png", "rgb.png"):
        np.testing.assert_allclose(_load(tmp_path / name, size=8), 100 / 255, atol=1e-6)
    with pytest.raises(ValueError, match=r"cut\.png"):
        _load(tmp_path / "cut.png", size=8)
    assert fake_opencv.calls == 2


@pytest.mark.parametrize("result", ["fail", "raise"])
def test_fast_path_falls_back_when_opencv_fails(tmp_path, monkeypatch, result):
    fake = _PillowAsOpenCV(result)
    monkeypatch.setattr(_loader, "_cv2", fake)
    pixels = _texture(16, 16)
    Image.fromarray(pixels).save(tmp_path / "a.png")
    np.testing.assert_allclose(
        _load(tmp_path / "a.png", size=16), pixels / 255, atol=1e-7
    )
    assert fake.calls == 1


def test_fast_path_checks_max_pixels_before_decoding(tmp_path, fake_opencv):
    Image.fromarray(_texture(64, 64)).save(tmp_path / "a.png")
    with pytest.raises(ValueError, match=r"a\.png.*4096 pixels.*max_pixels=1000"):
        _load(tmp_path / "a.png", size=8, max_pixels=1000)
    assert fake_opencv.calls == 0


def test_large_images_are_reduced_within_tolerance(tmp_path):
    """Image.reduce before bicubic: ~1e-3 from one bicubic resize on radiographs."""
    paths, _ = load_sample_images()
    with Image.open(paths[0]) as im:
        big = im.convert("L").resize((512, 512), Image.Resampling.BICUBIC)
    big.save(tmp_path / "big.png")
    out = _load(tmp_path / "big.png", size=64)
    exact = np.asarray(big.resize((64, 64), Image.Resampling.BICUBIC)) / 255
    bilinear = np.asarray(big.resize((64, 64), Image.Resampling.BILINEAR)) / 255
    gap = np.abs(out - exact).mean()
    assert gap < 2e-3 and gap < 0.5 * np.abs(bilinear - exact).mean()


def test_file_contents_given_as_paths_are_named_briefly():
    buffer = io.BytesIO()
    Image.fromarray(_gradient(64, 64)).save(buffer, format="PNG")
    with pytest.raises(ValueError, match=r"X\[0\] is \d+ bytes of data") as error:
        ImageLoader(size=8).fit_transform([buffer.getvalue()])
    assert len(str(error.value)) < 200


def test_a_float_tiff_with_nan_pixels_says_so(tmp_path):
    values = np.full((8, 8), 0.5, np.float32)
    values[3, 3] = np.nan
    Image.fromarray(values, mode="F").save(tmp_path / "nan.tif")
    with pytest.raises(
        ValueError, match="nan.tif.*1 of its 64 'F'-mode pixels are NaN"
    ):
        _load(tmp_path / "nan.tif", size=8)
