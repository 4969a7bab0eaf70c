"""Tests of ImageLoader: formats, intensities, resize policies, errors, sklearn API."""

import pickle
import struct
import warnings
import zlib
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from PIL import Image
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


def test_skip_and_warn_never_misalign(bad_files):
    paths, y = load_sample_images()
    X = [paths[0], bad_files["corrupt"], paths[8], bad_files["missing"]]
    labels = np.array([y[0], "virus", y[8], "virus"])

    loader = ImageLoader(size=16, on_error="skip")
    images = loader.fit_transform(X)
    assert images.shape == (2, 16, 16)
    np.testing.assert_array_equal(loader.kept_indices_, [0, 2])
    assert loader.failed_paths_ == [
        str(bad_files["corrupt"]),
        str(bad_files["missing"]),
    ]
    assert len(loader.errors_) == 2 and "no such file" in loader.errors_[1]
    np.testing.assert_array_equal(
        images, ImageLoader(size=16).transform([paths[0], paths[8]])
    )

    with pytest.raises(ValueError, match="misalign"):
        ImageLoader(size=16, on_error="skip").fit_transform(X, labels)

    with pytest.warns(UserWarning, match=r"skipped 2 of 4.*corrupt\.png"):
        images, y_kept = ImageLoader(size=16, on_error="warn").load(X, labels)
    assert images.shape[0] == len(y_kept) == 2
    assert y_kept.tolist() == ["normal", "bacteria"]

    with pytest.raises(ValueError, match="None of the 2 files"):
        ImageLoader(size=16, on_error="skip").transform(
            [bad_files["corrupt"], bad_files["text"]]
        )
    with pytest.raises(ValueError, match="targets"):
        ImageLoader(size=16).load(X, labels[:2])


def test_all_read_resets_the_record(bad_files):
    paths, y = load_sample_images()
    loader = ImageLoader(size=8, on_error="skip")
    loader.transform([paths[0], bad_files["text"]])
    loader.fit_transform(paths[:3], y[:3])  # y is fine when nothing is skipped
    assert loader.failed_paths_ == [] and loader.kept_indices_.tolist() == [0, 1, 2]


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
