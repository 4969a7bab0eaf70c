"""Label files parsed once: by Python's csv module, or by pandas' C parser.

The public label files are large (CheXpert's ``train.csv`` has 223,414 rows,
PadChest's 160,861, MIMIC-CXR's metadata 377,110), and a loader needs only a
few of their columns for every row: the columns that say whether a row is
kept (its image path, its view). The other cells are needed for the rows
kept, often a tenth of the file when only part of the images is on disk.

:func:`read_table` returns a :class:`LabelTable` that gives both: ``column``
(one column of every row) and ``rows`` (every cell of chosen rows). Two
readers build it, with the same results:

* Python's :mod:`csv` module reads every cell of every row (always available;
  also the reader of small files, where importing pandas would cost more than
  it saves);
* pandas' C parser reads the requested columns of a large file, and the cells
  of the chosen rows are cut out of the file's text afterwards. A byte-level
  scan (numpy) first finds where each row starts and ends and checks that the
  file is plain CSV as the csv module reads it: every row as many fields as
  the header, quotes only where a field starts or ends, no NUL byte, no lone
  carriage return, no field over the csv module's size limit. A file that is
  not (a short or long row, stray quotes...) is read by the csv module, so
  that a row that cannot be read is counted and named the same way.
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

#: Which reader :func:`read_table` uses: ``"auto"`` (pandas' C parser for a
#: file of at least :data:`FAST_MIN_BYTES` when pandas is installed, else the
#: csv module), ``"csv"`` or ``"pandas"`` (for any size; needs pandas).
PARSER = "auto"
#: Smallest file (bytes, uncompressed) that ``"auto"`` reads with pandas.
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
    """Columns parsed by pandas; rows cut out of the text where they lie."""

    def __init__(self, header, data, starts, ends, quoted, columns):
        super().__init__(header, len(starts), [], len(starts))
        self._data, self._starts, self._ends = data, starts, ends
        self._quoted = quoted
        self._columns = columns  # position -> (n,) object array
        self._text = None

    def column(self, name):
        j = self.index(name)
        if j not in self._columns:
            self._columns[j] = self.rows()[:, j]
        return self._columns[j]

    def rows(self, index=None):
        with gc_paused():
            text = self._rows_text(index)
            if self._quoted:
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
            return self._decoded(starts[0], ends[-1])
        if self._data.isascii():  # a character is a byte
            if self._text is None:
                self._text = self._data.decode("ascii")
            text = self._text
            return "\n".join(
                [text[s:e] for s, e in zip(starts.tolist(), ends.tolist())]
            )
        data = self._data
        return "\n".join(
            [data[s:e].decode("utf-8") for s, e in zip(starts.tolist(), ends.tolist())]
        )

    def _decoded(self, start, end):
        return self._data[start:end].decode("utf-8")


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

    def rows(self, index=None):
        if index is None:
            return np.concatenate([t.rows() for t in self._tables])
        index = np.arange(len(self))[index]  # a mask or positions, in order
        if (np.diff(index) < 0).any():
            order = np.argsort(index, kind="stable")
            out = np.empty((len(index), len(self.header)), dtype=object)
            out[order] = self.rows(index[order])
            return out
        bounds = np.searchsorted(index, self._offsets)
        return np.concatenate(
            [
                t.rows(index[a:b] - start)
                for t, a, b, start in zip(
                    self._tables, bounds[:-1], bounds[1:], self._offsets
                )
            ]
        )


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
        Columns that will be asked for in full (:meth:`LabelTable.column`):
        pandas parses them while it reads the file.

    Returns
    -------
    LabelTable
    """
    data = read_data(path)
    table = None
    if _use_pandas(len(data)):
        table = _scan(data, columns)
    if table is None:
        table = _parse(decode(data, path), path)
    missing = [c for c in required if c not in table.header]
    if missing:
        raise ValueError(
            f"{str(path)!r} lacks the column(s) {missing}; header: {table.header}."
        )
    return table


def _use_pandas(size):
    if PARSER == "csv" or (PARSER == "auto" and size < FAST_MIN_BYTES):
        return False
    if "pandas" in sys.modules:
        return True
    try:
        import pandas  # noqa: F401
    except ImportError:
        if PARSER == "pandas":
            raise
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
    quotes = np.flatnonzero(buf == _QUOTE) if b'"' in data else None
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
    fields = np.diff(np.searchsorted(commas, np.stack([starts, ends])), axis=0)[0]
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
    starts, ends, fields = starts[keep], ends[keep], fields[keep]
    if ((fields + 1) != width).any():
        return None
    wanted = sorted({header.index(c) for c in columns if c in header})
    parsed = {}
    if wanted and len(starts):
        import pandas

        frame = pandas.read_csv(
            io.BytesIO(data),
            header=0,
            names=list(range(width)),
            usecols=wanted,
            dtype=object,
            na_filter=False,
            index_col=False,
            engine="c",
            encoding="utf-8",
        )
        if len(frame) != len(starts):
            return None
        parsed = {j: frame[j].to_numpy(dtype=object) for j in wanted}
    return _ScannedTable(header, data, starts, ends, quotes is not None, parsed)


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
