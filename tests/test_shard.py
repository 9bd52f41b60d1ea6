"""Sharding: --shard K/N splits a run into resumable shards whose merge equals the unsharded
run row for row (tiny model, through the CLI and the runner); bad specs and bad merges fail
with clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from icl_tokens.cli import main
from icl_tokens.experiments import AblationConfig
from icl_tokens.results.shard import Shard, merge_shards, parse_shard, shard_episodes

CONDS = "icl,icl-template,+template,zero_shot"


def _ablate(tiny_dir: Path, out: Path, *extra: str, seeds: str = "0,1", n_test: str = "12"
            ) -> int:
    return main(["ablate", "--model", str(tiny_dir), "--task", "sst2", "--seeds", seeds,
                 "--n-test", n_test, "--k", "2", "--conditions", CONDS, "--batch-size", "4",
                 "--out", str(out), "--no-progress", *extra])


@pytest.fixture(scope="module")
def runs(tiny_dirs, tmp_path_factory):
    """The unsharded run and its three shards (2 seeds x 12 examples = 4 units of 8/4)."""
    import os

    from tests.conftest import _write_sst2

    root = tmp_path_factory.mktemp("shard")
    data = _write_sst2(root / "data")
    old = os.environ.get("ICL_TOKENS_DATA_DIR")
    os.environ["ICL_TOKENS_DATA_DIR"] = str(data)
    try:
        full = root / "full.csv"
        assert _ablate(tiny_dirs["llama"], full) == 0
        shards = [root / f"s{k}.csv" for k in (1, 2, 3)]
        for k, p in enumerate(shards, 1):
            assert _ablate(tiny_dirs["llama"], p, "--shard", f"{k}/3") == 0
        yield {"full": full, "shards": shards, "root": root, "data": data}
    finally:
        if old is None:
            os.environ.pop("ICL_TOKENS_DATA_DIR", None)
        else:
            os.environ["ICL_TOKENS_DATA_DIR"] = old


def test_merged_shards_equal_the_unsharded_run_row_for_row(runs, tiny_dirs, capsys,
                                                           monkeypatch):
    merged = runs["root"] / "merged.csv"
    assert main(["merge", str(merged), *map(str, runs["shards"])]) == 0
    assert "merged 96 rows" in capsys.readouterr().out
    assert merged.read_bytes() == runs["full"].read_bytes()
    side = json.loads(Path(str(merged) + ".meta.json").read_text())
    full_side = json.loads(Path(str(runs["full"]) + ".meta.json").read_text())
    assert side["identity"] == full_side["identity"]
    # every shard holds a share, none everything
    sizes = [len(p.read_text().splitlines()) - 1 for p in runs["shards"]]
    assert sum(sizes) == 96 and all(0 < s < 96 for s in sizes)
    # the unsharded command finds the merged file complete
    monkeypatch.setenv("ICL_TOKENS_DATA_DIR", str(runs["data"]))
    before = merged.read_bytes()
    assert _ablate(tiny_dirs["llama"], merged) == 0
    assert "complete (96 rows); nothing to do" in capsys.readouterr().err
    assert merged.read_bytes() == before
    shard2 = runs["shards"][1].read_bytes()
    assert _ablate(tiny_dirs["llama"], runs["shards"][1], "--shard", "2/3") == 0
    assert "this is shard 2/3 of the run" in capsys.readouterr().out
    assert runs["shards"][1].read_bytes() == shard2  # a complete shard resumes as a no-op


def test_merge_refuses_missing_overlapping_and_foreign_shards(runs, tmp_path, tiny_dirs,
                                                             monkeypatch):
    s1, s2, s3 = runs["shards"]
    with pytest.raises(ValueError, match=r"shard\(s\) 3/3 are missing"):
        merge_shards(tmp_path / "m.csv", [s1, s2])
    with pytest.raises(ValueError, match="shard 1/3 is given twice"):
        merge_shards(tmp_path / "m.csv", [s1, s1, s2, s3])
    with pytest.raises(ValueError, match="is not a shard"):
        merge_shards(tmp_path / "m.csv", [runs["full"], s2])
    with pytest.raises(ValueError, match="is one of the shards"):
        merge_shards(s1, [s1, s2, s3])
    # a shard of another run (other seeds) is refused, naming the difference
    monkeypatch.setenv("ICL_TOKENS_DATA_DIR", str(runs["data"]))
    other = tmp_path / "other.csv"
    assert _ablate(tiny_dirs["llama"], other, "--shard", "3/3", "--scoring", "label") == 0
    with pytest.raises(ValueError, match="different runs.*scoring"):
        merge_shards(tmp_path / "m.csv", [s1, s2, other])
    assert not (tmp_path / "m.csv").exists()


def test_merge_refuses_an_incomplete_shard_and_a_shard_holding_anothers_rows(runs, tmp_path):
    import shutil

    paths = []
    for p in runs["shards"]:
        q = tmp_path / p.name
        shutil.copy(p, q)
        shutil.copy(str(p) + ".meta.json", str(q) + ".meta.json")
        paths.append(q)
    lines = paths[1].read_text().splitlines(keepends=True)
    paths[1].write_text("".join(lines[:-1]))
    with pytest.raises(ValueError, match=r"shard 2/3 .* is incomplete: \d+ of \d+ rows"):
        merge_shards(tmp_path / "m.csv", paths)
    paths[1].write_text("".join(lines) + runs["shards"][0].read_text().splitlines(True)[1])
    with pytest.raises(ValueError, match="overlap"):
        merge_shards(tmp_path / "m.csv", paths)
    (tmp_path / "x.csv").write_text("x")
    with pytest.raises(ValueError, match="exists"):
        merge_shards(tmp_path / "x.csv", paths)


@pytest.mark.parametrize("spec,message", [
    ("0/3", "K must be between 1 and N=3"), ("4/3", "K must be between 1 and N=3"),
    ("1/0", "N must be >= 1"), ("2", "takes K/N"), ("a/b", "takes K/N"), ("1/2/3", "takes K/N"),
])
def test_bad_shard_specs(spec, message, tiny_dir, data_dir, tmp_path, capsys):
    with pytest.raises(ValueError, match=message):
        parse_shard(spec)
    with pytest.raises(SystemExit):
        _ablate(tiny_dir, tmp_path / "r.csv", "--shard", spec)
    assert message in capsys.readouterr().err
    assert not (tmp_path / "r.csv").exists()


def test_more_shards_than_units_is_refused_before_any_output(tiny_dir, data_dir, tmp_path,
                                                             capsys):
    # 1 seed x 3 examples is one unit (chunks of 8)
    assert _ablate(tiny_dir, tmp_path / "r.csv", "--shard", "2/2", seeds="0", n_test="3") == 2
    assert "only 1 work unit(s)" in capsys.readouterr().err
    assert not (tmp_path / "r.csv").exists()


def test_shard_identity_and_units():
    base = AblationConfig(seeds=(0, 1), n_test=5)
    assert "shard" not in base.identity() and "shard_unit_examples" not in base.identity()
    a = AblationConfig(seeds=(0, 1), n_test=5, shard="1/3").identity()
    b = AblationConfig(seeds=(0, 1), n_test=5, shard=" 2 / 3 ").identity()
    assert a["shard"] == "1/3" and b["shard"] == "2/3"
    strip = lambda d: {k: v for k, v in d.items() if k not in ("shard", "shard_unit_examples")}
    assert strip(a) == strip(b) == base.identity()
    with pytest.raises(ValueError, match="takes K/N"):
        AblationConfig(shard="x")

    from icl_tokens.episodes import Episode
    from icl_tokens.tasks import Example

    tests = tuple(Example(f"t{i}", {"text": "x"}, "1") for i in range(5))
    eps = [Episode("toy", s, 0, (), tests) for s in (0, 1)]
    # units: 0 (0: t0 t1), 1 (0: t2 t3), 2 (0: t4), 3 (1: t0 t1), 4 (1: t2 t3), 5 (1: t4)
    parts = [shard_episodes(eps, Shard(k, 3), 2) for k in (1, 2, 3)]
    ids = [[(e.seed, t.id) for e in p for t in e.tests] for p in parts]
    assert ids[0] == [(0, "t0"), (0, "t1"), (1, "t0"), (1, "t1")]
    assert ids[1] == [(0, "t2"), (0, "t3"), (1, "t2"), (1, "t3")]
    assert ids[2] == [(0, "t4"), (1, "t4")]
    assert sorted(sum(ids, [])) == sorted((e.seed, t.id) for e in eps for t in e.tests)
