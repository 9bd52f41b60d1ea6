"""ResultsFile: resuming over torn/damaged files, duplicates, expected keys, the lock, empty
leftovers, bad sidecars and paths, and exact text round-trips."""

from __future__ import annotations

import csv
import io
import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pandas as pd
import pytest

from icl_tokens import results as R
from icl_tokens.results import (
    KEY,
    ResultsCorruptError,
    ResultsFile,
    ResultsLockedError,
    ResultsMismatchError,
    sidecar_path,
)

COLUMNS = ["model", "task", "seed", "k", "example_id", "condition", "gold", "prediction",
           "correct", "valid", "continuation", "label_prediction", "label_correct",
           "score_Positive", "score_Negative", "n_tokens"]
IDENTITY = {"model": "tiny", "task": "sst2", "seeds": [0, 1], "k": 2}
TRICKY = 'He said "great", then\nleft,\r\nfin — ünïcödé 🎬 "" ,\r'


def row(i: int, condition: str = "icl", seed: int = 0, continuation: str | None = None,
        **over: object) -> dict[str, object]:
    """A valid result row for test example ``i``."""
    r: dict[str, object] = {
        "model": "tiny", "task": "sst2", "seed": seed, "k": 2, "example_id": f"test:{i}",
        "condition": condition, "gold": "Positive", "prediction": "Positive", "correct": 1,
        "valid": 1, "continuation": f"Positive\nline two of {i}" if continuation is None
        else continuation, "label_prediction": "Positive", "label_correct": 1,
        "score_Positive": "-0.125000", "score_Negative": "-2.500000", "n_tokens": 40 + i,
    }
    r.update(over)
    return r


def key(r: dict[str, object]) -> tuple[str, str, str]:
    return tuple(str(r[k]) for k in KEY)  # type: ignore[return-value]


def csv_bytes(*rows: list[object] | dict[str, object]) -> bytes:
    """Exactly what the csv module's default writer produces for these rows."""
    buf = io.StringIO()
    w = csv.writer(buf)
    for r in rows:
        w.writerow([r[c] for c in COLUMNS] if isinstance(r, dict) else r)
    return buf.getvalue().encode("utf-8")


def open_rf(path: Path, **kw: object) -> ResultsFile:
    return ResultsFile(path, COLUMNS, IDENTITY, {"versions": {"x": "1"}}, **kw)  # type: ignore


def seed_file(path: Path, body: bytes) -> None:
    """A sidecar from a real ResultsFile, then ``body`` as the CSV bytes."""
    with open_rf(path):
        pass
    path.write_bytes(body)


def read_df(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, dtype={"example_id": str, "continuation": str},
                       keep_default_na=False)


# --- 1. torn / damaged rows -----------------------------------------------------------------

def test_torn_quoted_tail_is_dropped_then_resume_appends_cleanly(tmp_path):
    p = tmp_path / "r.csv"
    r1, r2, r3, r4 = row(1), row(2), row(3), row(4)
    third = csv_bytes(r3)
    cut = third.index(b'"Positive\n') + len(b'"Positive\n')
    torn = csv_bytes(COLUMNS, r1, r2) + third[:cut]  # a killed writer: open quote, ends in \n
    assert torn.endswith(b"\n")
    seed_file(p, torn)

    with open_rf(p) as rf:
        assert rf.done == {key(r1), key(r2)}
        assert len(rf.notes) == 1
        note = rf.notes[0]
        assert "dropped 1 damaged row" in note and "line 6" in note
        assert "quoted field" in note and "recomputed" in note
        assert p.read_bytes() == csv_bytes(COLUMNS, r1, r2)  # tail truncated
        assert rf.append([r3, r4]) == 2
    df = read_df(p)
    assert list(df.example_id) == ["test:1", "test:2", "test:3", "test:4"]
    assert not df.duplicated(list(KEY)).any()
    assert list(df.continuation) == [f"Positive\nline two of {i}" for i in (1, 2, 3, 4)]

    size = p.stat().st_size
    with open_rf(p) as rf:  # a second rerun: nothing to drop, nothing to add
        assert rf.notes == [] and len(rf.done) == 4
        assert rf.append([r1, r2, r3, r4]) == 0
        assert len(rf.read()) == 4
    assert p.stat().st_size == size


def test_damage_in_the_middle_is_dropped_and_the_file_rewritten(tmp_path):
    # What the old code left: a torn row, then resumed rows appended inside its open quote.
    p = tmp_path / "r.csv"
    r1, r2, r3 = row(1), row(2), row(3)
    second = csv_bytes(r2)
    torn = second[: second.index(b'"Positive\n') + len(b'"Positive\n')]
    seed_file(p, csv_bytes(COLUMNS, r1) + torn + csv_bytes(r2, r3))

    with open_rf(p) as rf:
        assert rf.done == {key(r1), key(r2), key(r3)}
        assert len(rf.notes) == 1 and "dropped 1 damaged row (line 4:" in rf.notes[0]
        assert p.read_bytes() == csv_bytes(COLUMNS, r1, r2, r3)
        assert rf.append([row(4)]) == 1
        got = rf.read()
    assert list(got.example_id) == ["test:1", "test:2", "test:3", "test:4"]
    assert list(read_df(p).example_id) == list(got.example_id)


@pytest.mark.parametrize("bad, reason", [
    (row(2, seed="x"), "seed='x' is not an integer"),
    (row(2, score_Positive="nan"), "score_Positive='nan' is not a finite number"),
    (row(2, condition=""), "empty condition"),
    ([*csv_bytes(row(2)).decode().rstrip("\r\n").split(",")[:9]], "9 fields, expected 16"),
])
def test_invalid_rows_anywhere_are_dropped_with_a_note(tmp_path, bad, reason):
    p = tmp_path / "r.csv"
    good = [row(1), row(3), row(4)]
    seed_file(p, csv_bytes(COLUMNS, good[0], bad, *good[1:]))
    with open_rf(p) as rf:
        assert rf.done == {key(r) for r in good}
        assert rf.notes == [f"dropped 1 damaged row (line 4: {reason}); it will be recomputed "
                            f"(rewrote r.csv without them)"]
        assert len(rf.read()) == 3
    assert p.read_bytes() == csv_bytes(COLUMNS, *good)


def test_unterminated_last_row_without_quotes_is_dropped(tmp_path):
    p = tmp_path / "r.csv"
    seed_file(p, csv_bytes(COLUMNS, row(1)) + b"tiny,sst2,1,2,test:9,ic")
    with open_rf(p) as rf:
        assert rf.done == {key(row(1))}
        assert "without a line break" in rf.notes[0]
    assert p.read_bytes() == csv_bytes(COLUMNS, row(1))


def test_append_is_one_write_and_a_failed_write_is_rolled_back(tmp_path, monkeypatch):
    p = tmp_path / "r.csv"
    rf = open_rf(p)
    real_write = os.write
    calls: list[bytes] = []

    def spy(fd: int, data: bytes) -> int:
        calls.append(bytes(data))
        return real_write(fd, data)

    monkeypatch.setattr(os, "write", spy)
    rf.append([row(1), row(2), row(3)])
    monkeypatch.setattr(os, "write", real_write)
    assert calls == [csv_bytes(row(1), row(2), row(3))]

    def torn(fd: int, data: bytes) -> int:
        real_write(fd, bytes(data[: len(data) // 2]))
        raise OSError(28, "No space left on device")

    size = p.stat().st_size
    monkeypatch.setattr(os, "write", torn)
    with pytest.raises(ValueError, match="No space left.*r.csv|r.csv.*No space left"):
        rf.append([row(4)])
    monkeypatch.setattr(os, "write", real_write)
    assert p.stat().st_size == size and not rf.is_done(0, "test:4", "icl")
    rf.close()
    with open_rf(p) as again:
        assert again.notes == [] and len(again.done) == 3


# --- 2. duplicated keys ---------------------------------------------------------------------

def test_a_file_with_a_key_twice_is_refused(tmp_path):
    p = tmp_path / "r.csv"
    seed_file(p, csv_bytes(COLUMNS, row(1), row(2), row(1, prediction="Negative")))
    with pytest.raises(ResultsCorruptError) as e:
        open_rf(p)
    msg = str(e.value)
    assert str(p) in msg and "test:1" in msg and "lines 2 and 6" in msg
    assert "delete the file" in msg and "duplicate rows" in msg
    open_rf(tmp_path / "other.csv").close()  # the failed open released its lock
    assert not R.lock_path(p).exists()


def test_append_skips_done_keys_and_rejects_a_key_twice_in_one_call(tmp_path):
    with open_rf(tmp_path / "r.csv") as rf:
        assert rf.append([row(1)]) == 1
        assert rf.append([row(1), row(2)]) == 1  # test:1 is done: skipped
        with pytest.raises(ValueError, match="given twice"):
            rf.append([row(3), row(3)])
        assert not rf.is_done(0, "test:3", "icl")  # nothing of that call was written
        with pytest.raises(ValueError, match="not a finite number"):
            rf.append([row(5, score_Negative=float("nan"))])
        assert list(rf.read().example_id) == ["test:1", "test:2"]


# --- 3. expected keys -----------------------------------------------------------------------

def test_expected_keys_refuse_foreign_rows(tmp_path):
    p = tmp_path / "r.csv"
    expected = {key(row(i)) for i in (1, 2)}
    with open_rf(p, expected_keys=expected) as rf:
        with pytest.raises(ValueError, match="test:7.*not a row of this run"):
            rf.append([row(1), row(7)])
        assert rf.done == set()
        assert rf.append([row(1), row(2)]) == 2
    with open_rf(p, expected_keys=expected | {key(row(3))}) as rf:  # a superset: resumes
        assert len(rf.done) == 2
    with pytest.raises(ResultsMismatchError, match="another run") as e:
        open_rf(p, expected_keys={key(row(1))})
    assert str(p) in str(e.value) and "test:2" in str(e.value)
    assert open_rf(p, expected_keys={(0, "test:1", "icl"), (0, "test:2", "icl")}).done


# --- 4. one writer at a time ----------------------------------------------------------------

def test_a_second_opener_in_this_process_is_refused_until_close(tmp_path):
    p = tmp_path / "r.csv"
    first = open_rf(p)
    assert R.lock_path(p).read_text().strip() == str(os.getpid())
    with pytest.raises(ResultsLockedError) as e:
        open_rf(p)
    msg = str(e.value)
    assert f"pid {os.getpid()}" in msg and str(p) in msg and "--out" in msg
    first.append([row(1)])
    first.close()
    with open_rf(p) as second:
        assert second.done == {key(row(1))}
    assert not R.lock_path(p).exists()
    with pytest.raises(ValueError, match="closed"):
        first.append([row(2)])


def test_a_dropped_results_file_releases_its_lock(tmp_path):
    p = tmp_path / "r.csv"
    open_rf(p)  # never closed: __del__ releases it
    open_rf(p).close()


# The child loads the results package by path: importing icl_tokens would be slow (torch).
LOAD = textwrap.dedent("""
    import importlib.util, os, sys
    spec = importlib.util.spec_from_file_location(
        "results_child", {module!r}, submodule_search_locations=[os.path.dirname({module!r})])
    R = sys.modules[spec.name] = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(R)
""")
HOLD = LOAD + textwrap.dedent("""
    rf = R.ResultsFile(sys.argv[1], {columns!r}, {identity!r})
    print("locked", flush=True)
    sys.stdin.read()
""")
TRY = LOAD + textwrap.dedent("""
    try:
        R.ResultsFile(sys.argv[1], {columns!r}, {identity!r})
    except R.ResultsLockedError as e:
        print(e)
        sys.exit(3)
""")


def _py(src: str, path: Path, **kw: object) -> subprocess.Popen:
    code = src.format(module=R.__file__, columns=COLUMNS, identity=IDENTITY)
    return subprocess.Popen([sys.executable, "-c", code, str(path)], text=True,
                            stdout=subprocess.PIPE, **kw)  # type: ignore[call-overload]


def test_the_lock_holds_across_processes(tmp_path):
    p = tmp_path / "r.csv"
    holder = _py(HOLD, p, stdin=subprocess.PIPE)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(ResultsLockedError, match=f"another run \\(pid {holder.pid}\\)"):
            open_rf(p)
    finally:
        holder.communicate("")
    assert holder.returncode == 0
    with open_rf(p):  # released when the holder exited
        other = _py(TRY, p)
        out, _ = other.communicate()
        assert other.returncode == 3 and f"pid {os.getpid()}" in out and str(p) in out


def test_a_killed_holder_does_not_block_the_next_run(tmp_path):
    p = tmp_path / "r.csv"
    holder = _py(HOLD, p, stdin=subprocess.PIPE)
    assert holder.stdout.readline().strip() == "locked"
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    assert R.lock_path(p).exists()  # stale file, but the kernel dropped the flock
    open_rf(p).close()


# --- 5. no empty leftovers ------------------------------------------------------------------

def test_discard_if_empty_removes_a_fresh_empty_file(tmp_path):
    p = tmp_path / "sub" / "r.csv"
    rf = open_rf(p)
    assert p.exists() and sidecar_path(p).exists() and R.lock_path(p).exists()
    assert rf.discard_if_empty() is True
    assert not p.exists() and not sidecar_path(p).exists() and not R.lock_path(p).exists()
    ResultsFile(p, COLUMNS, {**IDENTITY, "k": 4}).close()  # corrected arguments: accepted

    with pytest.raises(KeyError):
        with ResultsFile(p, COLUMNS, {**IDENTITY, "k": 8}):
            raise KeyError("failed while loading the model")
    assert not p.exists() and not sidecar_path(p).exists()


def test_discard_if_empty_keeps_files_with_rows_or_from_before(tmp_path):
    p = tmp_path / "r.csv"
    with open_rf(p) as rf:
        rf.append([row(1)])
        assert rf.discard_if_empty() is False
    with pytest.raises(RuntimeError):
        with open_rf(p):  # resumed, wrote nothing: the earlier rows stay
            raise RuntimeError("boom")
    assert open_rf(p).done == {key(row(1))}


def test_a_header_only_file_from_other_arguments_is_replaced(tmp_path):
    p = tmp_path / "r.csv"
    ResultsFile(p, COLUMNS, {**IDENTITY, "k": 99}).close()  # a failed start of an old version
    with open_rf(p) as rf:
        assert len(rf.notes) == 1 and "held no rows" in rf.notes[0] and "k: file has 99" in \
            rf.notes[0]
    assert json.loads(sidecar_path(p).read_text())["identity"] == IDENTITY
    with open_rf(p) as rf:
        rf.append([row(1)])
    with pytest.raises(ResultsMismatchError, match="different arguments"):
        ResultsFile(p, COLUMNS, {**IDENTITY, "k": 99})


# --- 6. the sidecar -------------------------------------------------------------------------

@pytest.mark.parametrize("text", ["{not json", "[]", '"x"', '{"columns": []}',
                                  '{"identity": [], "columns": []}'])
def test_a_broken_sidecar_is_a_clear_mismatch(tmp_path, text):
    p = tmp_path / "r.csv"
    with open_rf(p) as rf:
        rf.append([row(1)])
    side = sidecar_path(p)
    side.write_text(text)
    with pytest.raises(ResultsMismatchError) as e:
        open_rf(p)
    assert str(side) in str(e.value) and "delete" in str(e.value)


def test_missing_sidecar_and_other_columns_name_the_file(tmp_path):
    p = tmp_path / "r.csv"
    with open_rf(p) as rf:
        rf.append([row(1)])
    with pytest.raises(ResultsMismatchError, match="columns differ") as e:
        ResultsFile(p, COLUMNS[:-1], IDENTITY)
    assert str(p) in str(e.value)
    sidecar_path(p).unlink()
    with pytest.raises(ResultsMismatchError, match="no sidecar") as e:
        open_rf(p)
    assert str(p) in str(e.value)


# --- 7. bad output paths --------------------------------------------------------------------

def test_unusable_output_paths_are_clear_value_errors(tmp_path):
    blocker = tmp_path / "afile"
    blocker.write_text("x")
    for bad in (blocker / "r.csv", blocker / "deeper" / "r.csv"):
        with pytest.raises(ValueError, match="is a file") as e:
            open_rf(bad)
        assert str(bad) in str(e.value) and "--out" in str(e.value)
    folder = tmp_path / "adir"
    folder.mkdir()
    with pytest.raises(ValueError, match="is a directory") as e:
        open_rf(folder)
    assert str(folder) in str(e.value)
    assert sorted(x.name for x in tmp_path.iterdir()) == ["adir", "afile"]


# --- 8. the kept API and exact text ---------------------------------------------------------

def test_text_round_trips_exactly(tmp_path):
    p = tmp_path / "r.csv"
    texts = [TRICKY, "", " lead and trail ", '"', "a,b", "\n", "nan", "x\ry"]
    with open_rf(p) as rf:
        rf.append([row(i, continuation=t) for i, t in enumerate(texts)])
    with open_rf(p) as rf:
        assert rf.notes == [] and len(rf.done) == len(texts)
        df = rf.read()
    assert list(df.continuation) == texts
    assert df.seed.dtype.kind == "i" and df.score_Positive.dtype.kind == "f"
    assert list(df.example_id) == [f"test:{i}" for i in range(len(texts))]


def test_update_meta_and_is_done(tmp_path):
    p = tmp_path / "r.csv"
    with open_rf(p) as rf:
        rf.update_meta({"model_info": {"n_layers": 2}, "path": Path("/x")})
        rf.append([row(1, seed=1)])
        assert rf.is_done(1, "test:1", "icl") and not rf.is_done(0, "test:1", "icl")
    stored = json.loads(sidecar_path(p).read_text())
    assert stored["identity"] == IDENTITY and stored["columns"] == COLUMNS
    assert stored["meta"] == {"versions": {"x": "1"}, "model_info": {"n_layers": 2},
                              "path": "/x"}
