from __future__ import annotations

import gzip
from pathlib import Path

import pyarrow as pa
import pytest

from core.errors import InputError
from feature_store.importers._csvreader import CsvReader, check_columns, text_lines

MULTILINE = (
    "id,text,n\n"
    'a,"one\nline two\nline three",1\n'
    "b,plain,2\n"
    "c,too,many,fields\n"
    "\n"
    'd,"x\n""quoted""\n",4\n'
    "e,short\n"
)


def write(path: Path, text: str) -> Path:
    if path.suffix == ".gz":
        path.write_bytes(gzip.compress(text.encode()))
    else:
        path.write_text(text)
    return path


def read_all(path: Path, batch_rows: int = 100_000) -> tuple[list[int], dict[int, str], list[str]]:
    lines: list[int] = []
    errors: dict[int, str] = {}
    ids: list[str] = []
    with CsvReader(path) as reader:
        assert reader.header == ("id", "text", "n")
        for batch in reader.batches(batch_rows):
            errors |= {len(lines) + i: message for i, message in batch.errors.items()}
            lines += batch.lines
            ids += batch.columns["id"]
    return lines, errors, ids


@pytest.mark.parametrize("name", ["data.csv", "data.csv.gz", "gzipped-but-named.csv"])
def test_lines_are_where_records_start_even_after_multiline_fields(
    tmp_path: Path, name: str
) -> None:
    path = tmp_path / name
    if name == "gzipped-but-named.csv":
        path.write_bytes(gzip.compress(MULTILINE.encode()))
    else:
        write(path, MULTILINE)
    lines, errors, ids = read_all(path)
    # a: 2-4, b: 5, c: 6 (4 fields), blank 7 skipped, d: 8-10, e: 11 (2 fields)
    assert lines == [2, 5, 6, 8, 11]
    assert ids == ["a", "b", "", "d", ""]
    assert errors == {2: "expected 3 fields, found 4", 4: "expected 3 fields, found 2"}


def test_batches_split_without_changing_lines_or_errors(tmp_path: Path) -> None:
    path = write(tmp_path / "data.csv", MULTILINE)
    assert read_all(path, batch_rows=2) == read_all(path)
    with CsvReader(path) as reader:
        assert [len(b) for b in reader.batches(2)] == [2, 2, 1]


def test_array_turns_empty_fields_into_nulls(tmp_path: Path) -> None:
    path = write(tmp_path / "data.csv", 'id,text,n\na,,1\nb,"",\n')
    with CsvReader(path) as reader:
        (batch,) = reader.batches()
    assert batch.array("text").to_pylist() == [None, None]
    assert batch.array("n").to_pylist() == ["1", None]
    assert batch.array("id").type == pa.string()


def test_fields_longer_than_the_csv_default_limit_are_read(tmp_path: Path) -> None:
    long_text = "x" * 300_000
    path = write(tmp_path / "data.csv", f'id,text,n\na,"{long_text}",1\n')
    with CsvReader(path) as reader:
        (batch,) = reader.batches()
    assert batch.columns["text"][0] == long_text


def test_truncated_gzip_raises_naming_the_file(tmp_path: Path) -> None:
    body = "id,text,n\n" + "".join(f"r{i},text {i},{i}\n" for i in range(20_000))
    path = tmp_path / "cut.csv.gz"
    data = gzip.compress(body.encode())
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError) as caught, CsvReader(path) as reader:
        for _ in reader.batches(1000):
            pass
    assert caught.value.file == str(path)
    assert caught.value.line is not None
    assert caught.value.line > 1
    assert "cut.csv.gz" in str(caught.value)


def test_corrupt_gzip_header_raises_input_error(tmp_path: Path) -> None:
    path = tmp_path / "bad.csv.gz"
    path.write_bytes(b"\x1f\x8b" + b"\x00" * 40)
    with pytest.raises(InputError, match=r"bad\.csv\.gz"):
        CsvReader(path)


def test_csv_syntax_error_raises_with_its_line(tmp_path: Path) -> None:
    path = write(tmp_path / "data.csv", 'id,text,n\na,ok,1\nb,"closed"junk,2\n')
    with pytest.raises(InputError, match="malformed CSV") as caught, CsvReader(path) as reader:
        list(reader.batches())
    assert (caught.value.file, caught.value.line) == (str(path), 3)


def test_unterminated_quote_raises(tmp_path: Path) -> None:
    path = write(tmp_path / "data.csv", 'id,text,n\na,"never closed,1\nb,x,2\n')
    with pytest.raises(InputError, match="malformed CSV"), CsvReader(path) as reader:
        list(reader.batches())


def test_empty_and_missing_files_raise(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no header"):
        CsvReader(write(tmp_path / "empty.csv", ""))
    with pytest.raises(InputError, match="cannot open"):
        CsvReader(tmp_path / "absent.csv")


def test_check_columns_lists_every_problem() -> None:
    with pytest.raises(InputError) as caught:
        check_columns(
            ["a", "latency", "a", "typo"],
            required=["a", "b"],
            known=["a", "b", "latency_s"],
            file=Path("f.csv"),
        )
    message = str(caught.value)
    assert "duplicate column(s): a" in message
    assert "unknown column(s): latency, typo" in message
    assert "missing required column(s): b" in message
    assert caught.value.line == 1
    check_columns(["b", "a"], required=["a", "b"], known=["a", "b"], file=Path("f.csv"))


def test_text_lines_numbers_lines_and_raises_on_truncation(tmp_path: Path) -> None:
    path = write(tmp_path / "x.jsonl.gz", "one\r\n\ntwo\n")
    assert list(text_lines(path)) == [(1, "one"), (2, ""), (3, "two")]
    cut = tmp_path / "cut.jsonl.gz"
    data = gzip.compress("".join(f"line {i}\n" for i in range(50_000)).encode())
    cut.write_bytes(data[:-20])
    with pytest.raises(InputError, match=r"cut\.jsonl\.gz"):
        list(text_lines(cut))
