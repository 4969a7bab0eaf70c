"""Both readers of the label files give the same data sets.

``skcxr.datasets._table`` reads a label file with Python's csv module, or
(a large file) by a byte-level scan that cuts a quote-free file at its commas
and has pandas' C parser read the columns of a file with quoted fields. Every
loader returns the same Bunch, field by field, whichever reads; a file the scan
cannot vouch for is read by the csv module, so that the same rows are counted
unreadable with the same messages.
"""

import csv
import io
import os
import warnings

import numpy as np
import pytest

from skcxr.datasets import (
    RunLengthMasks,
    _table,
    load_chestxray14,
    load_chexpert,
    load_kermany,
    load_mimic_cxr,
    load_padchest,
    load_rsna_pneumonia,
    load_siim_pneumothorax,
    load_vindr_cxr,
)
from skcxr.datasets._common import present, present_in

from ._layout_folders import LAYOUTS, build

LOADERS = {
    "chestxray14": load_chestxray14,
    "chexpert": load_chexpert,
    "mimic": load_mimic_cxr,
    "padchest": load_padchest,
    "rsna": load_rsna_pneumonia,
    "vindr": load_vindr_cxr,
    "siim": load_siim_pneumothorax,
}


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    return {
        layout: build(layout, tmp_path_factory.mktemp(layout))
        for layout in LAYOUTS
        if layout != "kermany"  # no label file
    }


def _load(monkeypatch, parser, loader, *args, pandas=True, **kwargs):
    with monkeypatch.context() as patch:
        patch.setattr(_table, "PARSER", parser)
        if not pandas:
            patch.setattr(_table, "_has_pandas", lambda: False)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            data = loader(*args, **kwargs)
    return data, [str(w.message) for w in caught]


def assert_same(a, b, where="data"):
    """Equal values, field by field (NaN equal to NaN, arrays of arrays too)."""
    if isinstance(a, dict):
        assert list(a) == list(b), where
        for key in a:
            assert_same(a[key], b[key], f"{where}[{key!r}]")
    elif isinstance(a, RunLengthMasks):
        assert a.rles == b.rles and a.shape == b.shape, where
    elif isinstance(a, np.ndarray) and a.dtype == object:
        assert a.shape == b.shape, where
        for i, (x, y) in enumerate(zip(a.ravel().tolist(), b.ravel().tolist())):
            assert_same(x, y, f"{where}[{i}]")
    elif isinstance(a, np.ndarray):
        assert a.dtype == b.dtype, where
        np.testing.assert_array_equal(a, b, err_msg=where)
    elif isinstance(a, (list, tuple)):
        assert type(a) is type(b) and len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same(x, y, f"{where}[{i}]")
    elif hasattr(a, "equals"):  # a DataFrame
        assert a.equals(b), where
    else:
        assert a == b or (a != a and b != b), where


OPTIONS = {
    "chexpert": [{"split": None}, {"views": ["PA"], "uncertain": "ones"}],
    "chestxray14": [{}, {"views": "AP", "single_label": "drop"}],
    "padchest": [{}, {"views": ["LATERAL"], "classes": ["No Finding", "Nodule"]}],
    "mimic": [{}, {"split": "train", "uncertain": "zeros"}],
    "rsna": [{}, {"classes": ["No Finding", "Pneumonia"]}],
    "vindr": [{}, {"readers": "any"}],
    "siim": [{"mask_side": 1024}],
}


@pytest.mark.parametrize(
    "layout, options",
    [(layout, o) for layout, opts in OPTIONS.items() for o in opts],
)
def test_every_field_is_the_same_whichever_reads(folders, monkeypatch, layout, options):
    folder, loader = folders[layout], LOADERS[layout]
    options = {"on_missing": "skip", "as_frame": True, **options}
    by_csv, told = _load(monkeypatch, "csv", loader, folder, **options)
    scanned, told_scanned = _load(monkeypatch, "fast", loader, folder, **options)
    assert_same(dict(by_csv), dict(scanned))
    assert told == told_scanned  # the same warnings (missing images...)
    # without pandas, a file with quoted fields goes to the csv module
    no_pandas, _ = _load(monkeypatch, "fast", loader, folder, pandas=False, **options)
    assert_same(dict(by_csv), dict(no_pandas))


def test_the_scan_reads_the_large_files(folders, monkeypatch):
    """The "fast" reader really scans these files (none falls back)."""
    scanned = []
    real = _table._scan

    def spy(data, columns):
        table = real(data, columns)
        scanned.append(table is not None)
        return table

    monkeypatch.setattr(_table, "_scan", spy)
    monkeypatch.setattr(_table, "PARSER", "fast")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for layout, loader in LOADERS.items():
            loader(folders[layout], on_missing="skip")
    assert scanned and all(scanned)
    monkeypatch.setattr(_table, "PARSER", "auto")  # small files: the csv module
    scanned.clear()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        load_chexpert(folders["chexpert"], on_missing="skip")
    assert scanned == []


# (file text, why it is there): every reader must agree on each
TEXTS = [
    ("a,b,c\n1,2,3\n4,5,6\n", "plain"),
    ("a,b,c\r\n1,2,3\r\n4,5,6\r\n", "CRLF"),
    ("a,b,c\n1,2,3\n4,5,6", "no final line feed"),
    ("\ufeffa,b,c\n1,2,3\n", "byte-order mark"),
    ('a,b,c\n1,"x, y",3\n"4",5,""\n', "quoted commas, empty quoted field"),
    ('a,b,c\n1,"say ""hi""",3\n', "doubled quotes"),
    ('a,b,c\n1,"two\nlines",3\n4,5,6\n', "a line feed in a quoted field"),
    ('a,b,"c\nd"\n1,2,3\n', "a quoted header over two lines"),
    ("a,b,c\n1,2,3\n\n4,5,6\n\n", "blank lines"),
    ("a,b,c\n1,2,3\n   \n4,5,6\n", "a line of spaces"),
    ("a,b,c\n1,2\n4,5,6\n", "a short row"),
    ("a,b,c\n1,2,3,4\n4,5,6\n", "a long row"),
    ("a,b,c\n1,2\n4,5,6,7\n", "a short and a long row"),
    ('a,b,c\n1,x"y,3\n', "a quote inside a field"),
    ('a,b,c\n1,"x"y,3\n', "text after a closing quote"),
    ('a,b,c\n1,"open,3\n4,5,6\n', "an unclosed quote"),
    ("a,b,c\r1,2,3\r4,5,6\r", "carriage returns alone"),
    ("a,b,c\n1,é,3\n", "UTF-8 text"),
    ("a,b,c\n1,\x00,3\n", "a NUL byte"),
    ("\na,b,c\n1,2,3\n", "a blank first line"),
    ("a,b,c\n", "a header only"),
    ("", "nothing"),
    ("a\n1\n2\n", "one column"),
    (" a , b ,c\n1,2,3\n", "spaces around the names"),
    ("a,b,c\n1,2,3\n" + "x" * 140_000 + ",2,3\n", "a field over the csv limit"),
]


def _read(path, parser, monkeypatch, columns=("a", "c")):
    with monkeypatch.context() as patch:
        patch.setattr(_table, "PARSER", parser)
        try:
            table = _table.read_table(path, columns=columns)
        except ValueError as exc:
            return "error", str(exc)
        cells = {name: table.column(name).tolist() for name in table.header}
        picked = table.rows(np.arange(len(table))[::-1][::2]).tolist()
        return (
            table.header,
            table.rows().tolist(),
            table.bad,
            table.n_rows,
            cells,
            picked,
        )


@pytest.mark.parametrize("text, why", TEXTS, ids=[why for _, why in TEXTS])
def test_readers_agree_on_unusual_files(tmp_path, monkeypatch, text, why):
    path = tmp_path / "labels.csv"
    path.write_bytes(text.encode("utf-8"))
    assert _read(path, "fast", monkeypatch) == _read(path, "csv", monkeypatch), why


def test_readers_agree_on_an_encoding_error(tmp_path, monkeypatch):
    path = tmp_path / "labels.csv"
    path.write_bytes(b"a,b\n1,\xff\xfe\n")
    fast = _read(path, "fast", monkeypatch)
    assert fast == _read(path, "csv", monkeypatch)
    assert fast[0] == "error" and "is not UTF-8 text" in fast[1]


@pytest.mark.parametrize("seed", range(3))
def test_readers_agree_on_random_csv(tmp_path, monkeypatch, seed):
    """Files written by the csv module: quotes, commas, line feeds in fields."""
    rng = np.random.default_rng(seed)
    alphabet = list("ab ,\"\n'[]1é")
    for trial in range(40):
        width = int(rng.integers(2, 6))
        out = io.StringIO()
        writer = csv.writer(
            out,
            lineterminator=["\n", "\r\n"][trial % 2],
            quoting=[csv.QUOTE_MINIMAL, csv.QUOTE_ALL][trial % 3 == 0],
        )
        writer.writerow([f"h{j}" for j in range(width)])
        for _ in range(int(rng.integers(0, 8))):
            writer.writerow(
                [
                    "".join(rng.choice(alphabet, int(rng.integers(0, 7))))
                    for _ in range(width)
                ]
            )
        path = tmp_path / f"{trial}.csv"
        path.write_text(out.getvalue(), encoding="utf-8", newline="")
        columns = ("h0", "h1")
        fast = _read(path, "fast", monkeypatch, columns)
        assert fast == _read(path, "csv", monkeypatch, columns), out.getvalue()
        assert fast[0] != "error"


def test_the_scan_declines_what_it_cannot_vouch_for():
    scan = _table._scan
    assert scan(b"a,b\n1,2\n", []) is not None
    assert scan(b'a,b\n"1,2\n', []) is None  # an unclosed quote
    assert scan(b"a,b\n1\n", []) is None  # a short row
    assert scan(b"a,b\n1,2,3\n", []) is None  # a long row
    assert scan(b"a,b\r1,2\r", []) is None  # a carriage return alone
    assert scan(b'a,b\n1,x"y\n', []) is None  # a quote inside a field


def _tree(root):
    """Files, folders and names that listing and stat-ing must agree on."""
    for path in (
        "train/p1/s1/a.jpg",
        "train/p1/s1/b.jpg",
        "train/p2/s1/a.jpg",
        "train/p10/s2/c.jpg",
        "flat/x.png",
        "flat/y.png",
        "ünï/cöde.jpg",
    ):
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_bytes(b"")
    (root / "train" / "p3" / "s1" / "a.jpg").mkdir(parents=True)  # a folder
    (root / "linked").symlink_to(root / "train" / "p1", target_is_directory=True)
    return [
        "train/p1/s1/a.jpg",
        "train/p1/s1/b.jpg",
        "train/p1/s1/c.jpg",
        "train/p2/s1/a.jpg",
        "train/p2/s2/a.jpg",
        "train/p3/s1/a.jpg",
        "train/p4/s1/a.jpg",
        "train/p10/s2/c.jpg",
        "train/p1//s1/a.jpg",
        "train/./p2/s1/a.jpg",
        "train/p2/../p1/s1/b.jpg",
        "train/p1/s1",
        "linked/s1/a.jpg",
        "flat/x.png",
        "flat/z.png",
        "flat",
        "ünï/cöde.jpg",
        "",
    ]


def test_present_is_a_stat_per_file(tmp_path):
    root = tmp_path / "data"
    paths = _tree(root)
    truth = [os.path.isfile(os.path.join(root, p)) for p in paths]
    assert present(str(root), paths).tolist() == truth
    prefixed = [f"Folder-v1/{p}" for p in paths]
    assert present(str(root), prefixed, strip=len("Folder-v1/")).tolist() == truth
    many = paths * 50  # enough to list folders rather than stat files
    assert present(str(root), many).tolist() == truth * 50
    train = [p for p in paths if p.startswith("train/")] * 30
    truth_train = [os.path.isfile(os.path.join(root, p)) for p in train]
    assert present(str(root), train).tolist() == truth_train


@pytest.mark.parametrize("parser", ["csv", "fast"])
def test_present_in_a_column(tmp_path, monkeypatch, parser):
    root = tmp_path / "data"
    paths = [p for p in _tree(root) if "," not in p] * 40
    label = tmp_path / "labels.csv"
    label.write_text("Path,x\n" + "".join(f"Folder-v1/{p},1\n" for p in paths))
    monkeypatch.setattr(_table, "PARSER", parser)
    table = _table.read_table(label)
    truth = np.array([os.path.isfile(os.path.join(root, p)) for p in paths])
    strip = len("Folder-v1/")
    found = present_in(str(root), table, "Path", strip=strip)
    np.testing.assert_array_equal(found, truth)
    some = np.arange(len(paths))[::3]
    np.testing.assert_array_equal(
        present_in(str(root), table, "Path", strip=strip, index=some), truth[some]
    )


def test_byte_helpers():
    data = b"abc,defghijklmnopq,/x/yz,,q"
    buf = np.frombuffer(data, dtype=np.uint8)
    starts, ends = np.array([0, 4, 18, 24, 25]), np.array([3, 17, 23, 24, 27])
    cells = [data[s:e] for s, e in zip(starts, ends)]
    assert _table.fixed_width(buf, starts, ends).tolist() == cells
    assert _table.fixed_width(buf, starts, ends, width=8) is None
    hashes = _table.hashes(buf, starts, ends)
    assert len(set(hashes.tolist())) == 5
    again = _table.hashes(np.frombuffer(b"q" + data, np.uint8), starts + 1, ends + 1)
    np.testing.assert_array_equal(hashes, again)  # a hash is of the bytes only
    prefix = _table.common_prefix
    same = np.frombuffer(b"train/p1/a,train/p1/b,train/p2", np.uint8)
    assert prefix(same, np.array([0, 11, 22]), np.array([10, 21, 30])) == b"train/p"
    assert prefix(same, np.array([0]), np.array([10])) == b"train/p1/a"
    assert prefix(same, np.array([0, 11]), np.array([8, 21])) == b"train/p1"


def test_kermany_reads_no_label_file(tmp_path):
    folder = build("kermany", tmp_path)
    paths, y = load_kermany(folder)
    assert len(paths) == 12 and set(y) == {"NORMAL", "PNEUMONIA"}
