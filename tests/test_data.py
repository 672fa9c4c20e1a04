"""Built-in data sets and data loaders."""

from __future__ import annotations

import gzip
import struct

import numpy as np
import pytest

from dgn_core.data import DataError, check_data, cosine, digits, load_data, noisy_circle, read_idx


def test_noisy_circle_statistics():
    X = noisy_circle(20000, noise_std=0.05, seed=1)
    r = np.linalg.norm(X, axis=1)
    # radial residual has std ~ 0.05 (the noise); mean radius ~ 1 within 5 standard errors
    assert abs(r.mean() - 1.0) < 5 * 0.05 / np.sqrt(len(r)) + 0.05**2  # + bias of |.|: O(s^2/2)
    assert abs(r.std() - 0.05) < 0.002


def test_cosine_relation():
    X = cosine(500, seed=0)
    np.testing.assert_allclose(X[:, 1], np.cos(1.4 * X[:, 0]), rtol=0, atol=0)


def test_digits_class():
    X4 = digits(4)
    assert X4.shape[1] == 64 and 150 < len(X4) < 200
    assert X4.min() >= 0 and X4.max() <= 1


def test_check_data_errors():
    with pytest.raises(DataError, match="NaN"):
        check_data([[0.0, np.nan]])
    with pytest.raises(DataError, match="infinite"):
        check_data([[0.0, np.inf]])
    with pytest.raises(DataError, match="empty"):
        check_data(np.zeros((0, 2)))
    with pytest.raises(DataError, match="columns"):
        check_data(np.zeros((3, 3)), dim=2)


def test_load_npy_csv_idx(tmp_path):
    X = np.random.default_rng(0).normal(size=(7, 3))
    np.save(tmp_path / "x.npy", X)
    np.testing.assert_array_equal(load_data(tmp_path / "x.npy"), X)
    np.savetxt(tmp_path / "x.csv", X, delimiter=",", header="a,b,c")
    np.testing.assert_allclose(load_data(tmp_path / "x.csv"), X, rtol=1e-15)
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(DataError, match="pickled"):
        load_data(tmp_path / "obj.npy")
    imgs = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    raw = bytes([0, 0, 0x08, 3]) + struct.pack(">III", 2, 3, 4) + imgs.tobytes()
    (tmp_path / "t10k-images-idx3-ubyte.gz").write_bytes(gzip.compress(raw))
    np.testing.assert_array_equal(read_idx(tmp_path / "t10k-images-idx3-ubyte.gz"), imgs)
    L = load_data(tmp_path / "t10k-images-idx3-ubyte.gz")
    assert L.shape == (2, 12)
    np.testing.assert_allclose(L * 255, imgs.reshape(2, 12))
    (tmp_path / "bad-idx3-ubyte").write_bytes(b"\x00\x00\x08\x03" + struct.pack(">III", 5, 3, 4))
    with pytest.raises(DataError, match="bytes"):
        load_data(tmp_path / "bad-idx3-ubyte")


# (file name, contents, words the DataError must contain besides the path); line numbers
# are as in the file, counted from 1 with the header and comments included
_BAD_TABLES = [
    # a bad first row used to be dropped as a "header" (N = 3 instead of 4)
    ("a.csv", "1,abc\n2,3\n4,5\n6,7\n", ["line 1, column 2", "'abc' is not a number"]),
    ("a.csv", "# note\nx,y\n2,3\n4,zz\n", ["line 4, column 2", "'zz'"]),
    ("a.csv", "x,y\n2,3\n4,5,6\n", ["line 3 has 3 column(s)", "line 2 has 2"]),
    ("a.csv", "x,y\n2,3\n\n4,nan\n", ["line 4, column 2", "'nan'", "finite"]),
    ("a.csv", "1,2\n3,-inf\n", ["line 2, column 2", "finite"]),
    ("a.csv", "1,2\n3,1e400\n", ["line 2, column 2", "'1e400'", "finite"]),
    ("a.csv", "1+2j,3\n", ["line 1, column 1", "complex"]),
    ("a.csv", "1,3\n2,1+2j\n", ["line 2, column 2", "complex"]),
    ("a.csv", "1,,3\n", ["line 1, column 2 is empty"]),
    ("a.csv", "x,y\n1;2\n", ["line 2, column 1", "separated by ','"]),
    ("a.csv", "x,y\n", ["no data rows", "header on line 1"]),
    ("a.csv", "", ["no data rows"]),
    ("a.csv", "x,y\n1,2\n1e200,2\n", ["line 3, column 1", "too large for float64"]),
    ("a.txt", "1 2\n3 x\n", ["line 2, column 2", "'x'"]),
    ("a.tsv", "1\t2\t3\n4\t\t6\n", ["line 2, column 2 is empty"]),
    ("a.tsv", "x\ty\n1,2\n", ["line 2, column 1", "separated by '\\t'"]),
]


@pytest.mark.parametrize("fname, text, words", _BAD_TABLES,
                         ids=[repr(t[1])[:30] for t in _BAD_TABLES])
def test_bad_tables_name_line_and_column(tmp_path, fname, text, words):
    path = tmp_path / fname
    path.write_text(text)
    with pytest.raises(DataError) as info:
        load_data(path)
    msg = str(info.value)
    assert str(path) in msg
    for word in words:
        assert word in msg, (word, msg)


def test_header_is_a_line_without_numbers(tmp_path):
    X = np.arange(8.0).reshape(4, 2)
    text = "".join(f"{float(a)!r},{float(b)!r}\n" for a, b in X)
    for header in ("", "x,y\n", "# comment\nx,y\n", "\"x\",\"y\"\n"):
        (tmp_path / "t.csv").write_text(header + text)
        np.testing.assert_array_equal(load_data(tmp_path / "t.csv"), X)
    (tmp_path / "t.tsv").write_text("a\tb\n" + text.replace(",", "\t"))
    np.testing.assert_array_equal(load_data(tmp_path / "t.tsv"), X)
    # as spreadsheets write it: a UTF-8 byte-order mark and CRLF line ends
    (tmp_path / "excel.csv").write_bytes(b"\xef\xbb\xbf" + text.replace("\n", "\r\n").encode())
    np.testing.assert_array_equal(load_data(tmp_path / "excel.csv"), X)


def test_bad_files(tmp_path):
    (tmp_path / "d.csv").mkdir()
    with pytest.raises(DataError, match="is a directory"):
        load_data(tmp_path / "d.csv")
    with pytest.raises(FileNotFoundError, match="no data file"):
        load_data(tmp_path / "absent.csv")
    (tmp_path / "bin.csv").write_bytes(b"\x89PNG\r\n\x1a\n\xff\xfe")
    with pytest.raises(DataError, match="not a text file"):
        load_data(tmp_path / "bin.csv")
    np.save(tmp_path / "c.npy", np.ones((3, 2)) * (1 + 1j))
    with pytest.raises(DataError, match="complex"):
        load_data(tmp_path / "c.npy")
    np.save(tmp_path / "s.npy", np.array([["1", "2"]]))
    with pytest.raises(DataError, match="strings"):
        load_data(tmp_path / "s.npy")
    np.savez(tmp_path / "z.npz", a=np.ones(3))
    (tmp_path / "z.npz").rename(tmp_path / "z.npy")
    with pytest.raises(DataError, match="npz archive"):
        load_data(tmp_path / "z.npy")
    (tmp_path / "x.json").write_text("[]")
    with pytest.raises(DataError, match="unknown data format"):
        load_data(tmp_path / "x.json")


@pytest.mark.parametrize("X, match", [
    (np.ones((3, 2)) * (1 + 1j), "complex"),  # used to lose the imaginary part with a warning
    (np.ones((3, 2), dtype=np.complex64), "complex"),
    ([[True, False]], "booleans"),
    ([["1", "2"]], "strings"),
    (np.array([[None, 1.0]], dtype=object), "None"),
    (np.array([[1 + 1j, 1.0]], dtype=object), "complex"),
    ([[1.0, 2.0], [3.0]], "rows of different lengths"),
    (np.zeros((0, 2)), "empty"),
    (np.zeros((2, 0)), "no columns"),
    (np.zeros((2, 2, 2)), "2-D"),
    ([[0.0, 1.0], [2.0, np.nan]], "row 1, column 1"),
    ([[0.0, 1.0], [-np.inf, 2.0]], "infinite at row 1, column 0"),
    ([[0.0, 1.0], [1e200, 2.0]], "too large for float64"),
])
def test_check_data_refuses(X, match):
    with pytest.raises(DataError, match=match):
        check_data(X)


def test_check_data_dimension_against_the_net():
    with pytest.raises(DataError, match="must have 2 columns"):
        check_data(np.zeros((2, 3)), dim=2)
    np.testing.assert_array_equal(check_data([1.0, 2.0], dim=2), [[1.0, 2.0]])
    with pytest.raises(DataError, match=r"X must be of shape \(N, 2\) or \(2,\), got shape \(3,\)"):
        check_data([1.0, 2.0, 3.0], dim=2)


def test_check_data_accepts_exact_numbers_and_the_limit():
    from fractions import Fraction

    X = check_data(np.array([[Fraction(1, 4), 2]], dtype=object))
    np.testing.assert_array_equal(X, [[0.25, 2.0]])
    big = np.array([[1e150, -1e150]])
    np.testing.assert_array_equal(check_data(big), big)  # MAX_DATA_ABS itself is accepted
