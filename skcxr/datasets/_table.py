"""Label files read once: by Python's csv module, or by a byte-level scan.

The public label files are large (CheXpert's ``train.csv`` has 223,414 rows,
PadChest's 160,861, MIMIC-CXR's metadata 377,110), and a loader needs only a
few of their columns for every row: the columns that say whether a row is
kept (its image path, its view). The other cells are needed for the rows
kept, often a tenth of the file when only part of the images is on disk.

:func:`read_table` returns a :class:`LabelTable` that gives both: ``column``
(one column of every row), ``map`` (a function of every cell of a column,
once per distinct cell) and ``rows`` (every cell of chosen rows). Two readers
build it, with the same results:

* Python's :mod:`csv` module reads every cell of every row (always available;
  also the reader of files under a megabyte, where the scan saves nothing);
* the scan (numpy) finds where each row starts and ends in the file's bytes
  and checks that the file is plain CSV as the csv module reads it: every
  row as many fields as the header, quotes only where a field starts or
  ends, no NUL byte, no lone carriage return, no field over the csv module's
  size limit. A file that is not (a short or long row, stray quotes...) is
  read by the csv module, so that a row that cannot be read is counted and
  named the same way. In a file without quotes a cell is what lies between
  two commas, so a column is cut out of the text at the commas' positions,
  and only the cells asked for become Python strings; short cells (a view,
  a sex) are compared as integers of their bytes, paths are hashed (see
  :func:`skcxr.datasets._common.present_in`). The columns of a file with
  quoted fields (PadChest's label lists) are read by pandas' C parser when
  pandas is installed (``pip install skcxr[pandas]``); without pandas such
  a file is read by the csv module. The cells of the rows kept are cut out
  of the text and split at their commas (by the csv module where quoted).
"""

import contextlib
import csv as _csv
import gc
import gzip
import io
import sys
import zipfile
from pathlib import Path

import numpy as np

#: Which reader :func:`read_table` uses: ``"auto"`` (the scan for a file of
#: at least :data:`FAST_MIN_BYTES`, the csv module for a smaller one),
#: ``"fast"`` (the scan for any file) or ``"csv"`` (the csv module only).
PARSER = "auto"
#: Smallest file (bytes, uncompressed) that ``"auto"`` scans.
FAST_MIN_BYTES = 1 << 20

_NL, _CR, _QUOTE, _COMMA = 10, 13, 34, 44
_BOM = b"\xef\xbb\xbf"


@contextlib.contextmanager
def gc_paused():
    """Pause the cyclic garbage collector while a label file is parsed.

    Parsing builds hundreds of thousands of row lists, none of which can be
    part of a reference cycle; the collector would walk them again and again
    while they are built (about doubling the time to index CheXpert's
    223,414 rows). It is switched back on afterwards if it was on; the lists
    are gone by then.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def read_data(path):
    """Bytes of a label file: plain, gzip (``.gz``) or the one CSV of a ``.zip``."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{str(path)!r} is not a file.")
    data = path.read_bytes()
    if data[:2] == b"\x1f\x8b":
        data = gzip.decompress(data)
    elif data[:4] == b"PK\x03\x04":
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            members = [n for n in archive.namelist() if n.lower().endswith(".csv")]
            if len(members) != 1:
                raise ValueError(
                    f"{str(path)!r} must hold exactly one .csv file, found {members}."
                )
            data = archive.read(members[0])
    return data


def decode(data, path):
    """UTF-8 text of a label file's bytes (a byte-order mark dropped)."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ValueError(f"{str(path)!r} is not UTF-8 text: {exc}.") from None


class LabelTable:
    """The rows of a label file: a few columns of every row, any row in full.

    Attributes
    ----------
    header : list of str
        Column names, stripped of surrounding spaces.
    n_rows : int
        Data rows read (blank lines are not rows).
    bad : list of (int, list of str)
        The 1-based data-row number and fields of every row that has not as
        many fields as the header; they are not among the table's rows.
    """

    def __init__(self, header, n_rows, bad, n_good):
        self.header = header
        self.n_rows = n_rows
        self.bad = bad
        self._n = n_good

    def __len__(self):
        """Number of rows with as many fields as the header."""
        return self._n

    def index(self, name):
        """Position of a column (given by name or position)."""
        return name if isinstance(name, int) else self.header.index(name)

    def column(self, name):
        """(n,) object array of the cells (str) of one column (name or
        position), every row."""
        return self.rows()[:, self.index(name)]

    def rows(self, index=None):
        """(k, n_columns) object array of str: the rows at ``index`` (all)."""
        raise NotImplementedError

    def cells(self, name, index):
        """(k,) object array of one column's cells in the rows at ``index``."""
        return self.column(name)[index]

    def map(self, name, fn, dtype=object, index=None):
        """``fn`` of each cell of a column (in the rows at ``index``, all by
        default), applied once per distinct cell."""
        return map_values(
            self.cells(name, slice(None) if index is None else index), fn, dtype
        )

    def parts(self):
        """``[(table, first row)]``: the files whose rows this table holds."""
        return [(self, 0)]

    def spans(self, name, index=None):
        """Byte offsets ``(starts, ends)`` of a column's cells in the file's
        bytes (:attr:`buffer`), where the table knows them; else None."""
        return None


class _ParsedTable(LabelTable):
    """Every cell in memory, as the csv module read it."""

    def __init__(self, header, table, bad, n_rows):
        super().__init__(header, n_rows, bad, len(table))
        self._table = table

    def column(self, name):
        return self._table[:, self.index(name)]

    def rows(self, index=None):
        return self._table if index is None else self._table[index]


class _ScannedTable(LabelTable):
    """Rows found by a byte-level scan; cells cut out of the text as needed.

    In a file without quotes a field is what lies between two commas, so
    each column's fields are found from the commas' positions (numpy) and
    only the cells asked for become Python strings. In a file with quoted
    fields, pandas' C parser reads the columns asked for in full, and the
    csv module the rows asked for.
    """

    def __init__(self, header, data, buf, starts, ends, commas, columns):
        super().__init__(header, len(starts), [], len(starts))
        self._data, self._buf = data, buf
        self._starts, self._ends = starts, ends
        # the commas' positions and each row's first comma; None in a file
        # with quoted fields
        self._commas, self._first = commas if commas is not None else (None, None)
        self._columns = dict(columns)  # position -> (n,) object array

    def column(self, name):
        j = self.index(name)
        if j not in self._columns:
            if self._commas is not None:
                self._columns[j] = self._cut(*self.spans(j))
            else:
                self._columns[j] = self.rows()[:, j]
        return self._columns[j]

    @property
    def buffer(self):
        """The file's bytes, as a uint8 array."""
        return self._buf

    def cells(self, name, index):
        spans = self.spans(name, index)
        if spans is None:
            return super().cells(name, index)
        return self._cut(*spans)

    def spans(self, name, index=None):
        if self._commas is None:
            return None
        j, last = self.index(name), len(self.header) - 1
        first = self._first if index is None else self._first[index]
        if j == 0:
            starts = self._starts if index is None else self._starts[index]
        else:
            starts = self._commas[first + (j - 1)] + 1
        if j == last:
            ends = self._ends if index is None else self._ends[index]
        else:
            ends = self._commas[first + j]
        return starts, ends

    def map(self, name, fn, dtype=object, index=None):
        spans = self.spans(name, index)
        if spans is None or int((spans[1] - spans[0]).max(initial=0)) > 8:
            return super().map(name, fn, dtype, index)
        # a cell of up to 8 bytes is its own uint64 (zero-padded)
        first, codes = _distinct(blocks(self._buf, *spans)[:, 0])
        values = self._cut(spans[0][first], spans[1][first]).tolist()
        return np.fromiter(map(fn, values), dtype=dtype, count=len(values))[codes]

    def _cut(self, starts, ends):
        out = np.empty(len(starts), dtype=object)
        if len(starts):  # one decode: the cells joined by a byte no cell holds
            data = self._data
            with gc_paused():
                out[:] = (
                    b"\0".join(
                        [data[a:b] for a, b in zip(starts.tolist(), ends.tolist())]
                    )
                    .decode("utf-8")
                    .split("\0")
                )
        return out

    def rows(self, index=None):
        with gc_paused():
            text = self._rows_text(index)
            if self._commas is None:
                cells = list(_csv.reader(io.StringIO(text, newline="")))
            else:  # no quote in the file: a row's fields are what lies between commas
                cells = [line.split(",") for line in text.split("\n")] if text else []
            del text
            out = np.empty((len(cells), len(self.header)), dtype=object)
            if cells:
                out[:] = cells
            del cells
        return out

    def _rows_text(self, index):
        """The text of the rows at ``index``, one line feed between rows."""
        starts, ends = self._starts, self._ends
        if not len(starts):
            return ""
        if index is not None:
            starts, ends = starts[index], ends[index]
            if not len(starts):
                return ""
        elif (starts[1:] == ends[:-1] + 1).all():  # one stretch of text
            return self._data[starts[0] : ends[-1]].decode("utf-8")
        data = self._data
        return b"\n".join(
            [data[s:e] for s, e in zip(starts.tolist(), ends.tolist())]
        ).decode("utf-8")


# Byte-level helpers on the cells of a scanned file, given by their offsets
# ``starts`` / ``ends`` in ``buf`` (the file's bytes as uint8): whole columns
# in a few numpy operations, no Python string per cell. A scanned file holds
# no NUL byte, so zero bytes pad a cell unambiguously.


def blocks(buf, starts, ends):
    """(n, k) uint64: each cell's bytes, 8 to a word, zero past its end."""
    lengths = ends - starts
    k = max(1, -(-int(lengths.max(initial=0)) // 8))
    return np.stack([_word(buf, starts, lengths, 8 * j) for j in range(k)], axis=1)


_MASKS = np.array([(1 << (8 * k)) - 1 for k in range(8)] + [(1 << 64) - 1], "<u8")


def _word(buf, starts, lengths, offset):
    """(n,) uint64: bytes ``offset`` to ``offset + 8`` of each cell, zero past
    its end (little-endian: the cell's first byte is the lowest)."""
    at = starts + offset
    size = len(buf)
    if size >= 8:  # every 8 bytes of the file as one unaligned uint64
        words = np.ndarray((size - 7,), dtype="<u8", buffer=buf, strides=(1,))
        out = words[np.minimum(at, size - 8)]
        tail = np.flatnonzero(at > size - 8)
    else:
        out, tail = np.zeros(len(starts), dtype="<u8"), np.arange(len(starts))
    for i in tail[lengths[tail] > offset]:  # a cell in the file's last 8 bytes
        word = bytes(buf[at[i] : at[i] + 8]).ljust(8, b"\0")
        out[i] = np.frombuffer(word, dtype="<u8")[0]
    return out & _MASKS[np.clip(lengths - offset, 0, 8)]


def _distinct(keys, few=16):
    """Positions of the first of each distinct key, and each key's number.

    A column of views or labels holds a handful of distinct values: one
    comparison of the column per value beats sorting it (np.unique), which
    it falls back to past ``few`` values.
    """
    codes = np.full(len(keys), -1, dtype=np.intp)
    first = []
    left = np.arange(len(keys))
    while len(left):
        if len(first) == few:
            _, at, inverse = np.unique(keys, return_index=True, return_inverse=True)
            return at, inverse.reshape(-1)
        same = keys[left] == keys[left[0]]
        codes[left[same]] = len(first)
        first.append(left[0])
        left = left[~same]
    return np.asarray(first, dtype=np.intp), codes


def fixed_width(buf, starts, ends, width=64):
    """(n,) numpy ``S`` array of the cells, or None when one has more than
    ``width`` bytes."""
    if int((ends - starts).max(initial=0)) > width:
        return None
    words = np.ascontiguousarray(blocks(buf, starts, ends))
    return words.view(np.uint8).view(f"S{8 * words.shape[1]}").ravel()


def hashes(buf, starts, ends):
    """(n,) uint64 hash of each cell's bytes (equal cells, equal hashes)."""
    lengths = ends - starts
    out = lengths.astype(np.uint64)
    with np.errstate(over="ignore"):
        for offset in range(0, int(lengths.max(initial=0)), 8):
            out ^= _word(buf, starts, lengths, offset)
            out *= np.uint64(0x100000001B3)  # FNV-1a's prime, a word at a time
            out ^= out >> np.uint64(29)
    return out


def common_prefix(buf, starts, ends):
    """The longest prefix (bytes) that every cell starts with."""
    if not len(starts):
        return b""
    first = bytes(buf[starts[0] : ends[0]])
    lengths = ends - starts
    for offset in range(0, len(first) + 1, 8):
        words = _word(buf, starts, lengths, offset)
        differ = words != words[0]
        if differ.any():  # the first byte where a cell differs in this word
            theirs = words[differ].view(np.uint8).reshape(-1, 8)
            same = (theirs == words[:1].view(np.uint8)).all(axis=0)
            return first[: offset + int(np.argmin(same))]
    return first


def _pandas_columns(data, header, wanted):
    """``{position: (n,) object array}`` of columns read by pandas' C parser."""
    import pandas

    frame = pandas.read_csv(
        io.BytesIO(data),
        header=0,
        names=list(range(len(header))),
        usecols=sorted(wanted),
        dtype=object,
        na_filter=False,
        index_col=False,
        engine="c",
        encoding="utf-8",
    )
    return {j: frame[j].to_numpy(dtype=object) for j in sorted(wanted)}


class _StackedTable(LabelTable):
    """The rows of several tables with one header, one after the other."""

    def __init__(self, tables):
        super().__init__(
            tables[0].header,
            sum(t.n_rows for t in tables),
            [row for t in tables for row in t.bad],
            sum(len(t) for t in tables),
        )
        self._tables = tables
        self._offsets = np.cumsum([0] + [len(t) for t in tables])

    def column(self, name):
        return np.concatenate([t.column(name) for t in self._tables])

    def cells(self, name, index):
        return self._gather(index, lambda t, i: t.cells(name, i))

    def map(self, name, fn, dtype=object, index=None):
        if index is None:
            return np.concatenate([t.map(name, fn, dtype) for t in self._tables])
        return self._gather(index, lambda t, i: t.map(name, fn, dtype, i))

    def parts(self):
        return list(zip(self._tables, self._offsets[:-1].tolist()))

    def rows(self, index=None):
        if index is None:
            return np.concatenate([t.rows() for t in self._tables])
        return self._gather(index, lambda t, i: t.rows(i))

    def _gather(self, index, get):
        """``get(table, local index)`` of each table, in the order of ``index``."""
        index = np.arange(len(self))[index]  # a mask or positions
        order = np.argsort(index, kind="stable")
        ordered = index[order]
        bounds = np.searchsorted(ordered, self._offsets)
        out = np.concatenate(
            [
                get(t, ordered[a:b] - start)
                for t, a, b, start in zip(
                    self._tables, bounds[:-1], bounds[1:], self._offsets
                )
            ]
        )
        result = np.empty_like(out)
        result[order] = out
        return result


def concat_tables(tables):
    """One :class:`LabelTable` of the rows of ``tables`` (same header) in turn."""
    return tables[0] if len(tables) == 1 else _StackedTable(list(tables))


def read_table(path, *, required=(), columns=()):
    """Read a label file (``.csv``, ``.csv.gz`` or a ``.zip`` holding one CSV).

    Parameters
    ----------
    path : path-like
    required : sequence of str
        Columns that must be in the header (a ValueError names those missing).
    columns : sequence of str
        Columns that will be asked for in full (:meth:`LabelTable.column`): in
        a file with quoted fields, pandas parses them while it reads the file.

    Returns
    -------
    LabelTable
    """
    data = read_data(path)
    table = None
    if PARSER == "fast" or (PARSER == "auto" and len(data) >= FAST_MIN_BYTES):
        table = _scan(data, columns)
    if table is None:
        table = _parse(decode(data, path), path)
    missing = [c for c in required if c not in table.header]
    if missing:
        raise ValueError(
            f"{str(path)!r} lacks the column(s) {missing}; header: {table.header}."
        )
    return table


def _has_pandas():
    if "pandas" in sys.modules:
        return True
    try:
        import pandas  # noqa: F401
    except ImportError:
        return False
    return True


def _parse(text, path):
    """Every row, by the csv module."""
    with gc_paused():
        try:
            rows = list(_csv.reader(io.StringIO(text, newline="")))
        except _csv.Error as exc:
            raise ValueError(f"{str(path)!r} is not a CSV file: {exc}.") from None
        del text
        header = [h.strip() for h in rows[0]] if rows else []
        width = len(header)
        good, bad, n_rows = rows[1:], [], len(rows) - 1
        if set(map(len, good)) - {width}:  # blank lines, short or long rows
            good, n_rows = [], 0
            for row in rows[1:]:
                if not row or (len(row) == 1 and not row[0].strip()):
                    continue
                n_rows += 1
                if len(row) == width:
                    good.append(row)
                else:
                    bad.append((n_rows, row))
        table = np.empty((len(good), width), dtype=object)
        if good:
            table[:] = good
        # drop the row lists before the collector is back: a numpy array of
        # strings holds nothing it would have to walk
        del rows, good
    return _ParsedTable(header, table, bad, n_rows)


def _scan(data, columns):
    """A :class:`_ScannedTable`, or None when the csv module must read the file.

    The scan finds the rows' ends (line feeds outside quoted fields) and
    checks that each row has as many fields as the header, counting the
    commas outside quoted fields. That count is right when every quote opens
    a field, closes one or doubles another quote, which is checked first.
    """
    if data.startswith(_BOM):
        data = data[len(_BOM) :]
    if b"\x00" in data:
        return None
    quoted = b'"' in data
    if quoted and not _has_pandas():
        return None  # the csv module reads a file with quoted fields
    if not data.isascii():
        try:
            data.decode("utf-8")
        except UnicodeDecodeError:
            return None
    size = len(data)
    buf = np.frombuffer(data, dtype=np.uint8)
    cr = np.flatnonzero(buf == _CR)
    if cr.size and (cr[-1] == size - 1 or (buf[cr + 1] != _NL).any()):
        return None  # a lone carriage return ends a row for the csv module
    nl = np.flatnonzero(buf == _NL)
    quotes = np.flatnonzero(buf == _QUOTE) if quoted else None
    if quotes is not None:
        if quotes.size % 2 or not _quotes_ok(buf, quotes):
            return None
        nl = nl[np.searchsorted(quotes, nl) % 2 == 0]  # not inside a quoted field
    ends = nl if size and data[-1:] == b"\n" else np.append(nl, size)
    starts = np.empty_like(ends)
    starts[:1] = 0
    starts[1:] = ends[:-1] + 1
    # a row's text excludes its line end ("\n" or "\r\n")
    if ends.size:
        crlf = ends > starts
        crlf[crlf] = buf[ends[crlf] - 1] == _CR
        ends = ends - crlf
    blank = ends == starts
    if not ends.size or blank[0]:
        return None  # no header on the first line
    if int((ends - starts).max()) > _csv.field_size_limit():
        return None
    commas = np.flatnonzero(buf == _COMMA)
    first = np.searchsorted(commas, starts)  # each row's first comma
    fields = np.searchsorted(commas, ends) - first
    if quotes is not None:  # commas inside quoted fields separate nothing
        inside = np.searchsorted(commas, quotes)
        inside = inside[1::2] - inside[0::2]
        row = np.searchsorted(ends, quotes[0::2])
        fields -= np.bincount(row, weights=inside, minlength=len(ends)).astype(
            fields.dtype
        )
    header = next(_csv.reader([data[starts[0] : ends[0]].decode("utf-8")]))
    header = [h.strip() for h in header]
    width = len(header)
    if width < 2 or fields[0] + 1 != width:
        return None
    keep = ~blank
    keep[0] = False
    starts, ends, fields, first = starts[keep], ends[keep], fields[keep], first[keep]
    if ((fields + 1) != width).any():
        return None
    if quotes is None:
        return _ScannedTable(header, data, buf, starts, ends, (commas, first), {})
    wanted = sorted({header.index(c) for c in columns if c in header})
    parsed = _pandas_columns(data, header, wanted) if wanted and len(starts) else {}
    if any(len(values) != len(starts) for values in parsed.values()):
        return None
    return _ScannedTable(header, data, buf, starts, ends, None, parsed)


def _quotes_ok(buf, quotes):
    """Whether every quote opens a field, closes one, or doubles a quote.

    With quotes numbered from 0, an even one must start a field (after a
    comma, a line feed or at the start) or follow the quote before it (the
    second of a doubled quote); an odd one must end a field (before a comma,
    a line end or at the end) or precede the quote after it. Then a byte is
    inside a quoted field exactly when an odd number of quotes precede it.
    """
    size = len(buf)
    before = np.where(quotes > 0, buf[np.maximum(quotes - 1, 0)], _NL)
    after = np.where(quotes < size - 1, buf[np.minimum(quotes + 1, size - 1)], _NL)
    adjacent = quotes[1:] == quotes[:-1] + 1
    follows = np.concatenate([[False], adjacent])
    precedes = np.concatenate([adjacent, [False]])
    opens = (before == _COMMA) | (before == _NL) | follows
    closes = (after == _COMMA) | (after == _NL) | (after == _CR) | precedes
    return bool(opens[0::2].all() and closes[1::2].all())


class _Cached(dict):
    """``value -> fn(value)``, computed once per distinct value."""

    def __init__(self, fn):
        super().__init__()
        self.fn = fn

    def __missing__(self, key):
        value = self[key] = self.fn(key)
        return value


def map_values(values, fn, dtype=object):
    """``fn`` applied to every value, once per distinct value.

    With pandas already imported, the distinct values of a long sequence are
    found by its hash table (:func:`pandas.factorize`), in C.
    """
    n = len(values)
    if n >= 10_000 and "pandas" in sys.modules:
        codes, uniques = sys.modules["pandas"].factorize(
            np.asarray(values, dtype=object)
        )
        if n == 0 or codes.min() >= 0:  # every value hashed (no None, no NaN)
            mapped = np.fromiter(map(fn, uniques), dtype=dtype, count=len(uniques))
            return mapped[codes]
    cache = _Cached(fn)
    return np.fromiter(map(cache.__getitem__, values), dtype=dtype, count=n)
