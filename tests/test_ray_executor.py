"""``--executor ray`` on a local two-CPU Ray cluster (loopback only): ``ablate`` and
``reproduce`` equal the local runs, a worker killed mid-run is restarted and its unit recomputed
(nothing lost or written twice), a unit that fails on bad input stops the run with its one-line
error, and the command-line options refuse what would do nothing."""

from __future__ import annotations

import contextlib
import os
import signal
from pathlib import Path

import pandas as pd
import pytest

from icl_tokens.cli import main
from icl_tokens.experiments.registry import ABLATE_LEVELS
from icl_tokens.experiments.runner import run_config
from icl_tokens.results.tidy import read_rows

ray = pytest.importorskip("ray", reason="Ray is an optional extra: pip install 'icl_tokens[ray]'")

from icl_tokens.executors.ray_executor import RayExecutor  # noqa: E402

KEY = ["seed", "example_id", "condition"]


@pytest.fixture(scope="module")
def executor():
    """Two workers on a local cluster of 2 CPUs, shared by the tests (each loads a model once)."""
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
             _node_ip_address="127.0.0.1")
    ex = RayExecutor(workers=2, log=lambda s: None)
    try:
        yield ex
    finally:
        ex.close()
        ray.shutdown()


def _cfg(tiny_dir: Path, **kw):
    base = dict(model=str(tiny_dir), task="sst2", seeds=(0, 1), k=2, n_test=4, scoring="label",
                chunk_examples=1, conditions=("icl", "zero_shot", "-template"))
    return ABLATE_LEVELS["representation"].config(**{**base, **kw})


@contextlib.contextmanager
def killing_the_first_worker(executor: RayExecutor):
    """Within the block, SIGKILL the worker process that completes the first unit; yields the
    list of killed pids."""
    killed: list[int] = []

    def kill_first(res):
        if not killed:
            killed.append(res.pid)
            os.kill(res.pid, signal.SIGKILL)

    executor.on_unit = kill_first
    try:
        yield killed
    finally:
        executor.on_unit = None


def assert_same_rows(a: pd.DataFrame, b: pd.DataFrame) -> None:
    """Equal row for row in canonical order: text exactly, floats within 1e-5."""
    assert list(a.columns) == list(b.columns)
    assert a[KEY].astype(str).values.tolist() == b[KEY].astype(str).values.tolist()
    for c in a.columns:
        if c.startswith("score_"):
            assert (a[c].astype(float) - b[c].astype(float)).abs().max() <= 1e-5, c
        else:
            assert a[c].astype(str).tolist() == b[c].astype(str).tolist(), c


def test_ablate_equals_local_run(executor, tiny_dir, data_dir, tmp_path):
    local = run_config(_cfg(tiny_dir), out=tmp_path / "local.csv", progress=False,
                       log=lambda s: None)
    remote = run_config(_cfg(tiny_dir), out=tmp_path / "ray.csv", progress=False,
                        log=lambda s: None, executor=executor)
    assert len(remote) == 2 * 4 * 3
    assert_same_rows(read_rows(tmp_path / "local.csv"), read_rows(tmp_path / "ray.csv"))
    assert_same_rows(local, remote)
    run = executor.runs[-1]
    assert run["units"] == 8 and run["rows"] == 24
    assert sum(w["units"] for w in run["workers"]) == 8


def test_ray_run_resumes_a_local_partial_file(executor, tiny_dir, data_dir, tmp_path):
    """An interrupted run (here: a local file cut after its first rows) is completed by the Ray
    executor, which scores only the missing units."""
    full = run_config(_cfg(tiny_dir), out=tmp_path / "full.csv", progress=False,
                      log=lambda s: None)
    part = tmp_path / "part.csv"
    run_config(_cfg(tiny_dir), out=part, progress=False, log=lambda s: None)
    lines = part.read_text().splitlines(keepends=True)
    part.write_text("".join(lines[:1 + 9]))  # header + 3 complete examples of seed 0
    run_config(_cfg(tiny_dir), out=part, progress=False, log=lambda s: None, executor=executor)
    assert executor.runs[-1]["units"] == 5
    assert_same_rows(full, read_rows(part))


def test_killed_worker_is_restarted_and_nothing_is_lost_or_repeated(executor, tiny_dir,
                                                                   data_dir, tmp_path):
    local = run_config(_cfg(tiny_dir), progress=False, log=lambda s: None)
    with killing_the_first_worker(executor) as killed:
        df = run_config(_cfg(tiny_dir), out=tmp_path / "ray.csv", progress=False,
                        log=lambda s: None, executor=executor)
    rows = read_rows(tmp_path / "ray.csv")
    assert killed and not rows.duplicated(KEY).any() and len(rows) == 24
    assert_same_rows(local, rows)
    assert_same_rows(local, df)
    pids = set().union(*(w["pids"] for w in executor.runs[-1]["workers"]))
    assert killed[0] in pids and len(pids) >= 3  # the killed worker's restart scored units too


def test_a_unit_that_fails_stops_the_run_with_its_error(executor, tiny_dir, data_dir,
                                                        tmp_path, monkeypatch):
    cfg = _cfg(tiny_dir)

    def bad_items(ctx, episode):
        raise ValueError("example x: the prompt is empty; fix the task file.")

    monkeypatch.setattr(type(cfg), "build_items", lambda self, ctx, ep: bad_items(ctx, ep))
    with pytest.raises(ValueError, match=r"^example x: the prompt is empty; fix the task"):
        run_config(cfg, out=tmp_path / "bad.csv", progress=False, log=lambda s: None,
                   executor=executor)
    assert not (tmp_path / "bad.csv").exists()  # no rows: nothing left behind


def test_a_model_object_with_a_remote_executor_is_refused(executor, tiny_dir, data_dir):
    with pytest.raises(ValueError, match="load the model from cfg.model"):
        run_config(_cfg(tiny_dir), model=object(), progress=False, log=lambda s: None,
                   executor=executor)


def test_reproduce_through_ray_equals_local(executor, tiny_dir, data_dir, tmp_path):
    from icl_tokens.reproduce import Budget, reproduce

    budget = Budget("tiny", (0, 1), 2, k=2)
    args = dict(model=str(tiny_dir), tasks=["sst2"], budget=budget, progress=False,
                log=lambda s: None, command="reproduce --tables 2,4 (test)")
    a = reproduce("2,4", out_dir=tmp_path / "local", **args)
    b = reproduce("2,4", out_dir=tmp_path / "ray", executor=executor, **args)
    tidy = sorted(p.name for p in (a / "tidy").glob("*.csv"))
    assert tidy and tidy == sorted(p.name for p in (b / "tidy").glob("*.csv"))
    for name in tidy:
        x, y = pd.read_csv(a / "tidy" / name), pd.read_csv(b / "tidy" / name)
        pd.testing.assert_frame_equal(x, y, check_exact=False, atol=1e-5, rtol=0)
    for f in ("provenance.json", "report.md"):
        assert (a / f).read_text() == (b / f).read_text()


def test_cli_ablate_with_ray_executor(executor, tiny_dir, data_dir, tmp_path, capsys):
    """The command line joins the running cluster (``--ray-address`` of this one; its worker
    asks for no CPU, since the shared executor's workers hold both)."""
    address = ray.get_runtime_context().gcs_address
    common = ["ablate", "--model", str(tiny_dir), "--seeds", "0", "--k", "2", "--n-test", "2",
              "--scoring", "label", "--conditions", "icl,zero_shot", "--no-progress"]
    assert main([*common, "--out", str(tmp_path / "local.csv")]) == 0
    assert main([*common, "--out", str(tmp_path / "ray.csv"), "--executor", "ray",
                 "--ray-address", address, "--ray-workers", "1", "--ray-cpus", "0"]) == 0
    assert_same_rows(read_rows(tmp_path / "local.csv"), read_rows(tmp_path / "ray.csv"))


def test_ray_options_need_the_ray_executor(tmp_path, capsys):
    assert main(["ablate", "--out", str(tmp_path / "x.csv"), "--ray-workers", "2"]) == 2
    assert "--ray-address and --ray-workers need --executor ray" in capsys.readouterr().err


def test_workers_the_cluster_cannot_hold_are_refused(executor, tiny_dir):
    with pytest.raises(ValueError, match="do not fit the cluster's 2 CPU"):
        RayExecutor(workers=3, log=lambda s: None).start(_cfg(tiny_dir))


# ------------------------------------------------- the other resumable experiments on Ray
def _same_csv(a: Path, b: Path, skip: tuple[str, ...] = ()) -> None:
    """Two CSVs equal row for row: text exactly, numbers within 1e-5 (``skip``: wall times)."""
    x = pd.read_csv(a, dtype=str, keep_default_na=False).drop(columns=list(skip))
    y = pd.read_csv(b, dtype=str, keep_default_na=False).drop(columns=list(skip))
    assert list(x.columns) == list(y.columns) and len(x) == len(y) > 0
    for c in x.columns:
        nx, ny = pd.to_numeric(x[c], errors="coerce"), pd.to_numeric(y[c], errors="coerce")
        if nx.notna().all() and ny.notna().all() and (x[c] != "").all():
            assert (nx - ny).abs().max() <= 1e-5, c
        else:
            assert x[c].tolist() == y[c].tolist(), c


ATLAS_TIMES = ("exact_s", "attribution_s")


def _atlas_cfg(tiny_dir: Path):
    from icl_tokens.atlas.run import AtlasConfig

    return AtlasConfig(model=str(tiny_dir), task="sst2", seeds=(0, 1), k=2, n_test=2,
                       batch_size=16)


def test_atlas_equals_local_run_and_survives_a_killed_worker(executor, tiny_dir, data_dir,
                                                             tmp_path):
    """``atlas`` units (one test example each, a module-level function and plain data) run on
    the workers; the CSV equals the local one; a worker killed after its first unit is
    restarted and nothing is lost or written twice."""
    from icl_tokens.atlas.run import run_atlas

    local = run_atlas(_atlas_cfg(tiny_dir), out=tmp_path / "local.csv", progress=False,
                      log=lambda s: None)
    with killing_the_first_worker(executor) as killed:
        remote = run_atlas(_atlas_cfg(tiny_dir), out=tmp_path / "ray.csv", progress=False,
                           log=lambda s: None, executor=executor)
    assert killed and executor.runs[-1]["units"] == 4
    _same_csv(tmp_path / "local.csv", tmp_path / "ray.csv", skip=ATLAS_TIMES)
    assert not remote.duplicated(["seed", "example_id", "position"]).any()
    assert len(remote) == len(local)
    # a rerun through Ray computes nothing; a lost example is the only unit recomputed
    run_atlas(_atlas_cfg(tiny_dir), out=tmp_path / "ray.csv", progress=False,
              log=lambda s: None, executor=executor)
    assert executor.runs[-1]["units"] == 0
    lines = (tmp_path / "ray.csv").read_text(encoding="utf-8").splitlines(keepends=True)
    (tmp_path / "ray.csv").write_text("".join(lines[:-3]), encoding="utf-8")
    run_atlas(_atlas_cfg(tiny_dir), out=tmp_path / "ray.csv", progress=False,
              log=lambda s: None, executor=executor)
    assert executor.runs[-1]["units"] == 1
    _same_csv(tmp_path / "local.csv", tmp_path / "ray.csv", skip=ATLAS_TIMES)


def test_probe_and_attention_equal_local_runs(executor, tiny_dir, data_dir, tmp_path):
    """Probe features are captured on the workers and stored and fitted here; attention-mass
    batches run on the workers; both files equal the local runs'."""
    from icl_tokens.aggregation.attention_run import AttentionConfig, run_attention
    from icl_tokens.aggregation.probe_run import ProbeConfig, run_probes

    probe = dict(model=str(tiny_dir), task="sst2", seeds=(0,), k=2, n_test=12,
                 positions=("label", "t_out.colon"), folds=3, inner_folds=2, permutations=2,
                 batch_size=4, aggregation=True)
    attention = dict(model=str(tiny_dir), task="sst2", seeds=(0, 1), k=2, n_test=3,
                     batch_size=2, aggregation=True)
    for name, cfg, run in (("probe", ProbeConfig, run_probes),
                           ("attention", AttentionConfig, run_attention)):
        run(cfg(**(probe if name == "probe" else attention)), out=tmp_path / f"{name}-local.csv",
            progress=False, log=lambda s: None)
        run(cfg(**(probe if name == "probe" else attention)), out=tmp_path / f"{name}-ray.csv",
            progress=False, log=lambda s: None, executor=executor)
        assert executor.runs[-1]["units"] == (6 if name == "probe" else 8), name  # 2 knockouts
        _same_csv(tmp_path / f"{name}-local.csv", tmp_path / f"{name}-ray.csv")
    assert not (tmp_path / "probe-ray.csv.features").exists()  # complete: features removed


@pytest.mark.parametrize("command", [
    ["windows", "--conditions", "+template", "--width", "1"],
    ["control", "--conditions", "icl-content", "--draws", "2"],
    ["variants", "--tables", "8", "--numbers", "1", "--scoring", "label"],
    ["ablate", "--conditions", "icl,+template", "--scoring", "label", "--aggregation",
     "--compare"],
    ["atlas", "--groups", "none"],
], ids=lambda c: c[0] + ("-aggregation" if "--aggregation" in c else ""))
def test_cli_commands_with_ray_executor(command, executor, tiny_dir, data_dir, tmp_path,
                                        capsys):
    """Every resumable sub-command takes ``--executor ray`` and writes the local run's rows."""
    address = ray.get_runtime_context().gcs_address
    common = [*command, "--model", str(tiny_dir), "--task", "sst2", "--seeds", "0,1", "--k",
              "2", "--n-test", "2", "--no-progress"]
    assert main([*common, "--out", str(tmp_path / "local.csv")]) == 0
    assert main([*common, "--out", str(tmp_path / "ray.csv"), "--executor", "ray",
                 "--ray-address", address, "--ray-workers", "1", "--ray-cpus", "0"]) == 0
    skip = ATLAS_TIMES if command[0] == "atlas" else ()
    _same_csv(tmp_path / "local.csv", tmp_path / "ray.csv", skip=skip)
    if "--compare" in command:
        from icl_tokens.aggregation.experiment import baseline_path

        _same_csv(baseline_path(tmp_path / "local.csv"), baseline_path(tmp_path / "ray.csv"))
    assert "ray: 1 worker(s) loaded" in capsys.readouterr().err


def _failing_unit(ctx, name: str) -> list[dict]:
    raise ValueError(f"example {name}: the prompt is empty; fix the task file.")


def test_a_remote_unit_that_fails_stops_run_units_with_its_error(executor, tiny_dir, data_dir,
                                                                 tmp_path):
    """The path of atlas, probe and attention (``run_units`` with ``Unit.remote``): a unit that
    raises on bad input is not retried; the run stops with its one-line error."""
    import sys

    from icl_tokens.aggregation.loop import Unit, run_units

    here = sys.modules[__name__]
    ray.cloudpickle.register_pickle_by_value(here)  # the worker cannot import a test module
    try:
        executor.start(_cfg(tiny_dir))
        units = [Unit(f"u{i}", frozenset({("0", f"test:{i}", "icl")}),
                      remote=(_failing_unit, (f"x{i}",))) for i in range(3)]
        with pytest.raises(ValueError, match=r"^example x\d: the prompt is empty; fix the task"):
            run_units(None, units, executor=executor)
        with pytest.raises(ValueError, match="cannot run on a remote executor"):
            executor.start(_cfg(tiny_dir))
            run_units(None, [Unit("here", frozenset(), compute=lambda: [])], executor=executor)
    finally:
        ray.cloudpickle.unregister_pickle_by_value(here)
