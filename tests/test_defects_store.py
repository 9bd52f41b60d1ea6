"""The results store's defences: 0/1 indicator columns, a full disk, SIGTERM and stale lock
files, the folder lock, output paths checked without creating folders, canonical row order, and
one reader of result rows."""

from __future__ import annotations

import errno
import fcntl
import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest

from icl_tokens import results as R
from icl_tokens.results import (
    FolderLock,
    ResultsFile,
    ResultsLockedError,
    check_output_path,
    sidecar_path,
    terminate_as_interrupt,
)
from icl_tokens.results.shard import merge_shards
from icl_tokens.results.tidy import read_rows, read_tidy
from tests.test_results import COLUMNS, IDENTITY, csv_bytes, key, open_rf, row, seed_file

ENOSPC = OSError(errno.ENOSPC, "No space left on device")


def listing(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


# --- 0/1 indicator columns --------------------------------------------------------------------

@pytest.mark.parametrize("column, value", [("label_correct", 7), ("correct", 2), ("valid", -1)])
def test_an_out_of_range_indicator_is_a_damaged_row(tmp_path, column, value):
    p = tmp_path / "r.csv"
    seed_file(p, csv_bytes(COLUMNS, row(1), row(2, **{column: value}), row(3)))
    with open_rf(p) as rf:
        assert rf.done == {key(row(1)), key(row(3))}
        assert rf.notes == [f"dropped 1 damaged row (line 4: {column}='{value}' is not 0 or 1); "
                            "it will be recomputed (rewrote r.csv without them)"]
        with pytest.raises(ValueError, match=f"{column}='{value}' is not 0 or 1"):
            rf.append([row(2, **{column: value})])
        assert rf.append([row(2)]) == 1
        assert set(rf.read()[column]) == {1}
    assert R.BINARY_COLUMNS == ("correct", "valid", "label_correct")
    assert set(R.BINARY_COLUMNS) <= set(R.INT_COLUMNS)


def _shards(folder: Path) -> list[Path]:
    """Two hand-made shards of a run of one seed, examples test:1 and test:2, condition icl."""
    plan = {"seeds": [0], "example_ids": [["test:1", "test:2"]], "conditions": ["icl"],
            "unit_examples": 1}
    paths = []
    for k in (1, 2):
        p = folder / f"s{k}.csv"
        ident = {**IDENTITY, "shard": f"{k}/2", "shard_unit_examples": 1}
        with ResultsFile(p, COLUMNS, ident, {"shard_plan": plan}) as rf:
            rf.append([row(k)])
        paths.append(p)
    return paths


@pytest.mark.parametrize("column, value", [("label_correct", "7"), ("correct", "2"),
                                           ("valid", "-1")])
def test_merge_refuses_an_out_of_range_indicator_naming_the_shard(tmp_path, column, value):
    s1, s2 = _shards(tmp_path)
    assert merge_shards(tmp_path / "ok" / "m.csv", [s1, s2])["rows"] == 2
    bad = csv_bytes(COLUMNS, row(2, **{column: value}))
    s2.write_bytes(bad)
    with pytest.raises(ValueError) as e:
        merge_shards(tmp_path / "m.csv", [s1, s2])
    msg = str(e.value)
    assert str(s2) in msg and f"line 2: {column}='{value}' is not 0 or 1" in msg
    assert "rerun its command" in msg
    assert s2.read_bytes() == bad  # refused, not repaired behind the user's back
    assert not (tmp_path / "m.csv").exists()


# --- a full disk ------------------------------------------------------------------------------

def _fail_write_after(monkeypatch: pytest.MonkeyPatch, ok: int) -> None:
    """``os.write`` works ``ok`` times, then raises ENOSPC (without a file name, like the OS)."""
    real, calls = os.write, [0]

    def write(fd: int, data: bytes) -> int:
        calls[0] += 1
        if calls[0] > ok:
            raise ENOSPC
        return real(fd, data)

    monkeypatch.setattr(os, "write", write)


@pytest.mark.parametrize("ok", [0, 1])  # the sidecar fails / the header-only CSV fails
def test_a_full_disk_while_creating_leaves_nothing_and_names_the_path(tmp_path, monkeypatch, ok):
    p = tmp_path / "new" / "deeper" / "out.csv"
    _fail_write_after(monkeypatch, ok)
    with pytest.raises(ValueError, match="No space left on device") as e:
        open_rf(p)
    assert str(p) in str(e.value)
    assert listing(tmp_path) == []
    monkeypatch.undo()
    open_rf(p).close()  # the next run starts clean


def test_a_full_disk_writing_the_lock_leaves_no_lock_file(tmp_path, monkeypatch):
    p = tmp_path / "out.csv"

    def pwrite(fd: int, data: bytes, offset: int) -> int:
        raise ENOSPC

    monkeypatch.setattr(os, "pwrite", pwrite)
    with pytest.raises(ValueError, match="No space left on device") as e:
        open_rf(p)
    assert str(R.lock_path(p)) in str(e.value)
    assert listing(tmp_path) == []


def test_a_failed_lock_or_folder_creation_names_the_path(tmp_path, monkeypatch):
    p = tmp_path / "a" / "out.csv"
    real_open = os.open

    def no_lock(path: object, *a: object, **kw: object) -> int:
        if str(path).endswith(".lock"):
            raise ENOSPC
        return real_open(path, *a, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "open", no_lock)
    with pytest.raises(ValueError, match="No space left on device") as e:
        open_rf(p)
    assert str(R.lock_path(p)) in str(e.value) and listing(tmp_path) == []
    monkeypatch.undo()

    def no_mkdir(self: Path, *a: object, **kw: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(Path, "mkdir", no_mkdir)
    with pytest.raises(ValueError, match="No space left on device") as e:
        open_rf(p)
    assert str(tmp_path / "a") in str(e.value) and listing(tmp_path) == []


def test_oserrors_of_an_open_file_name_the_path(tmp_path, monkeypatch):
    p = tmp_path / "out.csv"
    with open_rf(p) as rf:
        rf.append([row(2), row(1)])
        _fail_write_after(monkeypatch, 0)
        with pytest.raises(OSError) as e:
            rf.update_meta({"x": 1})
        assert str(sidecar_path(p)) in str(e.value) and e.value.errno == errno.ENOSPC
        with pytest.raises(OSError) as e:
            rf.canonicalize([key(row(1)), key(row(2))])
        assert str(p) in str(e.value)
        with pytest.raises(ValueError) as e:
            rf.append([row(3)])
        assert str(p) in str(e.value) and "No space left" in str(e.value)
        monkeypatch.undo()
    assert listing(tmp_path) == ["out.csv", "out.csv.meta.json"]  # no temp file left


# --- SIGTERM and lock files left behind -----------------------------------------------------

LOAD = textwrap.dedent("""
    import importlib.util, os, sys
    spec = importlib.util.spec_from_file_location(
        "results_child", {module!r}, submodule_search_locations=[os.path.dirname({module!r})])
    R = sys.modules[spec.name] = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(R)
""")
TERM = LOAD + textwrap.dedent("""
    with R.terminate_as_interrupt():
        try:
            with R.ResultsFile(sys.argv[1], {columns!r}, {identity!r}) as rf:
                rf.append([{row!r}])
                print("locked", flush=True)
                sys.stdin.read()
        except KeyboardInterrupt:
            sys.exit(130)
""")
FOLDER = LOAD + textwrap.dedent("""
    with R.FolderLock(sys.argv[1]):
        print("locked", flush=True)
        sys.stdin.read()
""")


def _child(src: str, arg: Path) -> subprocess.Popen:
    code = src.format(module=R.__file__, columns=COLUMNS, identity=IDENTITY, row=row(1))
    proc = subprocess.Popen([sys.executable, "-c", code, str(arg)], text=True,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "locked"
    return proc


def test_sigterm_unwinds_and_leaves_no_lock_file(tmp_path):
    p = tmp_path / "r.csv"
    proc = _child(TERM, p)
    try:
        assert R.lock_path(p).exists()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 130  # the KeyboardInterrupt path, not a kill
    finally:
        proc.kill()
        proc.communicate()
    assert not R.lock_path(p).exists()
    with open_rf(p) as rf:
        assert rf.notes == [] and rf.done == {key(row(1))}


def test_terminate_as_interrupt_restores_the_handler_and_is_inert_off_the_main_thread():
    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(KeyboardInterrupt):
        with terminate_as_interrupt():
            assert signal.getsignal(signal.SIGTERM) is not before
            os.kill(os.getpid(), signal.SIGTERM)
    assert signal.getsignal(signal.SIGTERM) is before
    seen: list[object] = []

    def worker() -> None:
        with terminate_as_interrupt():
            seen.append(signal.getsignal(signal.SIGTERM))

    t = threading.Thread(target=worker)
    t.start()
    t.join()
    assert seen == [before]


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_a_lock_file_of_a_dead_process_neither_blocks_nor_notes(tmp_path):
    p = tmp_path / "r.csv"
    with open_rf(p) as rf:
        rf.append([row(1)])
    R.lock_path(p).write_text(f"{_dead_pid()}\n")  # left by a killed run
    with open_rf(p) as rf:
        assert rf.notes == [] and rf.done == {key(row(1))}
        assert R.lock_path(p).read_text().strip() == str(os.getpid())
    assert not R.lock_path(p).exists()


def test_a_lock_still_held_for_a_dead_pid_says_so(tmp_path):
    p = tmp_path / "r.csv"
    open_rf(p).close()
    dead = _dead_pid()
    fd = os.open(R.lock_path(p), os.O_RDWR | os.O_CREAT)  # a child the dead run forked
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        os.write(fd, f"{dead}\n".encode())
        with pytest.raises(ResultsLockedError) as e:
            open_rf(p)
        assert f"pid {dead}, no longer running" in str(e.value) and str(p) in str(e.value)
    finally:
        os.close(fd)


# --- the folder lock ------------------------------------------------------------------------

def test_a_folder_is_written_by_one_command_at_a_time(tmp_path):
    out = tmp_path / "runs" / "repro"
    with FolderLock(out) as lock:
        assert lock.held and (out / ".lock").read_text().strip() == str(os.getpid())
        with pytest.raises(ResultsLockedError) as e:
            FolderLock(out).acquire()
        msg = str(e.value)
        assert str(out) in msg and "another command" in msg and "is writing the folder" in msg
    assert listing(tmp_path) == []  # the folders it created were empty: removed
    out.mkdir(parents=True)
    proc = _child(FOLDER, out)
    try:
        with pytest.raises(ResultsLockedError, match=f"pid {proc.pid}\\)"):
            FolderLock(out).acquire()
    finally:
        proc.communicate("")
    assert proc.returncode == 0
    with FolderLock(out):
        pass
    assert listing(tmp_path) == ["runs", "runs/repro"]  # it did not create them: kept


# --- output paths are checked, not created ----------------------------------------------------

def test_check_output_path_creates_nothing_and_names_the_option(tmp_path, monkeypatch):
    target = tmp_path / "a" / "b" / "out.csv"
    check_output_path(target)
    check_output_path(target, "x.csv", option="OUT")
    assert listing(tmp_path) == []
    (tmp_path / "d").mkdir()
    with pytest.raises(ValueError, match="--out-dir .* is a directory") as e:
        check_output_path(tmp_path / "d", "run", option="--out-dir")
    assert str(tmp_path / "d" / "run") in str(e.value)
    (tmp_path / "f").write_text("x")
    with pytest.raises(ValueError, match=r"a parent is a file .*choose another OUT"):
        check_output_path(tmp_path / "f" / "g" / "out.csv", option="OUT")
    monkeypatch.setattr(os, "access", lambda *a, **kw: False)
    with pytest.raises(ValueError, match=r"folder .* is not writable; choose another --out\."):
        check_output_path(target)


def test_the_store_creates_the_folders_and_a_discarded_run_removes_them(tmp_path):
    (tmp_path / "kept").mkdir()
    p = tmp_path / "kept" / "new" / "sub" / "r.csv"
    rf = open_rf(p)
    assert p.exists()
    assert rf.discard_if_empty() is True
    assert listing(tmp_path) == ["kept"]
    with pytest.raises(KeyError):
        with open_rf(p):
            raise KeyError("failed while loading the model")
    assert listing(tmp_path) == ["kept"]
    with open_rf(p) as rf:
        rf.append([row(1)])
    assert listing(tmp_path / "kept") == ["new", "new/sub", "new/sub/r.csv",
                                          "new/sub/r.csv.meta.json"]


# --- canonical order ------------------------------------------------------------------------

def test_canonicalize_puts_a_repaired_file_in_the_runs_order(tmp_path):
    p = tmp_path / "r.csv"
    rows = [row(i) for i in (1, 2, 3, 4)]
    clean = csv_bytes(COLUMNS, *rows)
    torn = csv_bytes(rows[1])[:20]
    seed_file(p, csv_bytes(COLUMNS, rows[0]) + torn + b"\n" + csv_bytes(rows[2]))
    stranger = row(9, condition="extra")
    with open_rf(p) as rf:
        assert len(rf.notes) == 1
        rf.append([rows[3], stranger, rows[1]])  # the torn row is rescored last
        assert p.read_bytes() != clean
        assert rf.canonicalize([(0, f"test:{i}", "icl") for i in (1, 2, 3, 4)]) is True
        assert p.read_bytes() == clean + csv_bytes(stranger)  # rows not in the order: last
        assert rf.canonicalize([key(r) for r in rows]) is False
        assert rf.append([row(5)]) == 1  # still open, still locked
    with open_rf(p) as rf:
        assert rf.notes == [] and len(rf.done) == 6
    with pytest.raises(ValueError, match="closed"):
        rf.canonicalize([])


# --- one reader -------------------------------------------------------------------------------

def test_read_uses_the_shared_reader(tmp_path):
    cols = [*COLUMNS, "template", "window_start"]
    p = tmp_path / "r.csv"
    with ResultsFile(p, cols, IDENTITY) as rf:
        rf.append([{**row(1), "template": "007", "window_start": 3},
                   {**row(2), "template": "010", "window_start": None}])
        got = rf.read()
    assert list(got.template) == ["007", "010"]  # a text column stays text
    assert got.window_start.dtype.kind == "f" and got.window_start.isna().tolist() == [False,
                                                                                      True]
    assert got.equals(read_rows(p)) and got.equals(read_tidy(p))
    probe = tmp_path / "probe.csv"
    with ResultsFile(probe, ["seed", "example_id", "condition", "layer"], {"x": 1}) as rf:
        rf.append([{"seed": 0, "example_id": "007", "condition": "icl", "layer": 2}])
    assert read_rows(probe).example_id.tolist() == ["007"]
    with pytest.raises(ValueError, match="lacks the column"):
        read_tidy(probe)
    assert json.loads(sidecar_path(probe).read_text())["columns"][-1] == "layer"
