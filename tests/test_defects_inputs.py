"""Bad inputs get one clear error: task files, the data folder variable, model names and dtypes,
the Hub without network, ``max_new_tokens``; and the model modules import one way."""

from __future__ import annotations

import ast
import json
import os
import time
from pathlib import Path
from typing import Any

import pytest
import torch

import icl_tokens.tasks as tasks_mod
from icl_tokens import models as M
from icl_tokens.data import ENV_DATA_DIR, DataUnavailableError, load_task_data
from icl_tokens.engine.scoring import score_items
from icl_tokens.models import bos, registry
from icl_tokens.models import load as L
from icl_tokens.models import tokenizers as T
from icl_tokens.tasks import PAPER_TASKS, TaskDefinitionError, TaskSpec, load_task

HUB_ID = "some-org/some-model"
PROXY_VARS = ("http_proxy", "https_proxy", "all_proxy", "no_proxy")


# ------------------------------------------------------------------------------------ task files
def _good() -> dict[str, Any]:
    return load_task("sst2").to_dict() | {"name": "mine"}


BAD_FILES: dict[str, tuple[bytes, str]] = {
    "truncated.json": (json.dumps(_good()).encode()[:60], r"is not valid JSON: .* at line 1, "
                       r"column \d+; fix the syntax \(is the file complete\?\)"),
    "five.json": (b"5", r"expected a JSON object with the keys \[.*\], got 5; see "
                  r"data/tasks/sst2.json"),
    "intwords.json": (json.dumps(_good() | {"label_words": [1, 0]}).encode(),
                      r"'label_words' must be a list of strings, e.g. \[\"Positive\", "
                      r"\"Negative\"\]; got \[1, 0\]"),
    "nullstop.json": (json.dumps(_good() | {"stopwords": None}).encode(),
                      r"'stopwords' must be a list of strings, .*; got null"),
    "strwords.json": (json.dumps(_good() | {"label_words": "Positive Negative"}).encode(),
                      r"'label_words' must be a list of strings, .*; got \"Positive Negative\""),
    "intmap.json": (json.dumps(_good() | {"label_map": {"0": 0, "1": 1}}).encode(),
                    r"'label_map' must be an object mapping labels to label words"),
    "latin1.json": (json.dumps(_good() | {"description": "café"}, ensure_ascii=False)
                    .encode("latin-1"), r"is not UTF-8 \(byte 0xe9 at offset \d+\); re-save it "
                    r"with UTF-8"),
    "dupes.json": (json.dumps(_good() | {"label_words": ["Positive", "Positive"]}).encode(),
                   r"task 'mine': duplicate label words \['Positive'\]; make them unique"),
    "task.yaml": (b"name: mine\n", r"task files are JSON; write it as a .json file"),
}


@pytest.mark.parametrize("fname", sorted(BAD_FILES))
def test_malformed_task_file_is_one_clear_error(fname: str, tmp_path: Path) -> None:
    content, pattern = BAD_FILES[fname]
    path = tmp_path / fname
    path.write_bytes(content)
    for arg in (path, str(path)):
        with pytest.raises(TaskDefinitionError, match=pattern) as info:
            load_task(arg)
        assert isinstance(info.value, ValueError)
        assert str(info.value).startswith(f"task file {path}")
        assert "\n" not in str(info.value).replace("\\n", "")
    with pytest.raises(TaskDefinitionError, match=pattern):
        load_task_data(str(path), data_dir=tmp_path)


def test_missing_task_file_names_it(tmp_path: Path) -> None:
    for arg in (str(tmp_path / "nope.json"), "tasks/nope.json"):
        with pytest.raises(TaskDefinitionError, match=r"task file .*nope.json does not exist; "
                           r"check the path, or pass a shipped task name"):
            load_task(arg)


def test_user_task_file_with_any_path_loads(tmp_path: Path) -> None:
    path = tmp_path / "mine.task"
    path.write_text(json.dumps(_good()), encoding="utf-8")
    assert load_task(str(path)).name == "mine"
    assert tasks_mod.read_task_file(path) == load_task(path)


def test_task_spec_with_non_string_words_is_a_definition_error() -> None:
    base = _good()
    with pytest.raises(TaskDefinitionError, match=r"single words without whitespace"):
        TaskSpec(**(base | {"label_words": (1, 0), "label_map": {"0": 0, "1": 1}}))
    with pytest.raises(TaskDefinitionError, match=r"stopword 5 is not a single word"):
        TaskSpec(**(base | {"stopwords": ("the", 5)}))
    with pytest.raises(TaskDefinitionError, match=r"^task definition: expected a JSON object"):
        TaskSpec.from_dict([1, 2])  # type: ignore[arg-type]


def test_paper_tasks_in_the_papers_column_order() -> None:
    assert PAPER_TASKS == ("agnews", "sst2", "trec", "dbpedia", "rte", "cb")
    assert "PAPER_TASKS" in tasks_mod.__all__
    assert sorted(PAPER_TASKS) == tasks_mod.list_tasks()


# ---------------------------------------------------------------------------- data folder variable
@pytest.mark.parametrize("value", ["", "   "])
def test_empty_data_dir_variable_is_an_error(value: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV_DATA_DIR, value)
    with pytest.raises(DataUnavailableError) as info:
        load_task_data("sst2")
    msg = str(info.value)
    assert msg.startswith(f"${ENV_DATA_DIR} is set but empty ({value!r})")
    assert f"unset it (`unset {ENV_DATA_DIR}`)" in msg and "point it at the data folder" in msg


def test_missing_data_dir_is_an_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(ENV_DATA_DIR, str(tmp_path / "no-such-folder"))
    with pytest.raises(DataUnavailableError, match=r"no-such-folder' does not exist"):
        load_task_data("sst2")


def test_empty_data_dir_argument_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV_DATA_DIR, raising=False)
    with pytest.raises(ValueError, match=r"data_dir is empty \(''\); pass the data folder"):
        load_task_data("sst2", data_dir="")


# -------------------------------------------------------------------------- model names and dtypes
@pytest.fixture
def local_model(tmp_path: Path) -> Path:
    """A folder that resolves as a local model (only config.json is looked at)."""
    (tmp_path / "config.json").write_text("{}")
    return tmp_path


def _record_boot(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    seen: dict[str, Any] = {}

    def fake_boot(source: str, device: str | None, dtype: torch.dtype) -> torch.nn.Module:
        seen.update(source=source, dtype=dtype, offline=os.environ.get("HF_HUB_OFFLINE"))
        return torch.nn.Linear(1, 1)

    monkeypatch.setattr(L, "_boot", fake_boot)
    return seen


@pytest.mark.parametrize("name,dtype", [("float32", torch.float32), ("bfloat16", torch.bfloat16),
                                        ("float16", torch.float16)])
def test_dtype_by_name(name: str, dtype: torch.dtype, local_model: Path,
                       monkeypatch: pytest.MonkeyPatch) -> None:
    seen = _record_boot(monkeypatch)
    M.load_model(str(local_model), dtype=name)
    assert seen["dtype"] is dtype


@pytest.mark.parametrize("dtype", ["fp16", "float8", "", torch.int8, 16])
def test_unknown_dtype_is_a_clear_error(dtype: Any, local_model: Path,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    seen = _record_boot(monkeypatch)
    with pytest.raises(ValueError, match=r"unknown dtype .*; use one of \['float32', 'bfloat16', "
                       r"'float16'\] or a floating-point torch dtype"):
        M.load_model(str(local_model), dtype=dtype)
    assert not seen


@pytest.mark.parametrize("name", ["", "  ", None])
def test_empty_model_name_lists_known_names(name: Any) -> None:
    for func in (M.load_model, M.load_tokenizer, M.ensure_model_dir, M.ensure_tokenizer_dir):
        with pytest.raises(ValueError) as info:
            func(name)
        msg = str(info.value)
        assert msg.startswith(f"Unknown model {name!r} (")
        assert all(repr(k) in msg for k in M.KNOWN_MODELS) and "org/name" in msg


# ------------------------------------------------------------------------------ Hub without network
@pytest.fixture
def online(monkeypatch: pytest.MonkeyPatch) -> None:
    """Neither offline variable set, no proxy, the default endpoint."""
    for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_ENDPOINT", *PROXY_VARS,
                *(v.upper() for v in PROXY_VARS)):
        monkeypatch.delenv(var, raising=False)


def _no_route(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, int]]:
    """The probe fails as without network; returns the addresses it was asked for."""
    calls: list[tuple[str, int]] = []

    def probe(address: tuple[str, int], timeout: float) -> None:
        calls.append(address)
        assert timeout <= 3
        raise OSError("[Errno -2] Name or service not known")

    monkeypatch.setattr(registry, "_probe_hub", probe)
    return calls


def _assert_offline_hint(msg: str, reason: str) -> None:
    assert msg.startswith(f"cannot load {HUB_ID!r} from the Hugging Face hub: {reason}")
    assert "Set HF_HUB_OFFLINE=1 to work offline" in msg and "pass the local folder" in msg
    assert msg.endswith("or use an offline name: gemma-3-270m, smollm2-135m.")
    assert "\n" not in msg


def test_hub_without_network_fails_fast(online: None, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = _no_route(monkeypatch)
    seen = _record_boot(monkeypatch)
    monkeypatch.setattr(T.AutoTokenizer, "from_pretrained", lambda *a, **k: 1 / 0)
    for func in (M.load_model, M.load_tokenizer):
        start = time.perf_counter()
        with pytest.raises(ValueError) as info:
            func(HUB_ID)
        assert time.perf_counter() - start < 2
        _assert_offline_hint(str(info.value), "no network (huggingface.co:443 not reachable "
                             "within 3 s: OSError: [Errno -2] Name or service not known)")
    assert calls == [("huggingface.co", 443)] * 2 and not seen


def test_hub_while_offline_fails_at_once(online: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    calls = _no_route(monkeypatch)
    seen = _record_boot(monkeypatch)
    for func in (M.load_model, M.load_tokenizer):
        with pytest.raises(ValueError) as info:
            func(HUB_ID)
        _assert_offline_hint(str(info.value), "offline (HF_HUB_OFFLINE=1)")
    assert not calls and not seen


def test_hub_reachable_loads_online(online: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(registry, "_probe_hub", lambda address, timeout: None)
    seen = _record_boot(monkeypatch)
    M.load_model(HUB_ID, dtype="bfloat16")
    assert seen == {"source": HUB_ID, "dtype": torch.bfloat16, "offline": None}


def test_hub_unreachable_but_cached_loads_offline(
    online: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    _no_route(monkeypatch)
    asked: list[tuple[str, str]] = []
    monkeypatch.setattr(registry, "_hub_cached", lambda i, f: asked.append((i, f)) or True)
    seen = _record_boot(monkeypatch)
    M.load_model(HUB_ID)
    assert seen["offline"] == "1" and asked == [(HUB_ID, "config.json")]
    assert os.environ.get("HF_HUB_OFFLINE") is None


def test_real_probe_connects_once_with_a_timeout(
    online: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[tuple[Any, ...]] = []

    def refuse(address: tuple[str, int], timeout: float) -> None:
        seen.append((address, timeout))
        raise TimeoutError("timed out")

    monkeypatch.setattr(registry.socket, "create_connection", refuse)
    reason = registry.hub_unreachable_reason()
    assert reason == "no network (huggingface.co:443 not reachable within 3 s: TimeoutError: " \
                     "timed out)"
    assert seen == [(("huggingface.co", 443), 3.0)]


def test_probe_address_follows_endpoint_and_proxy(
    online: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_ENDPOINT", "http://mirror.example:8080")
    assert registry._hub_address() == ("mirror.example", 8080)
    monkeypatch.delenv("HF_ENDPOINT")
    monkeypatch.setenv("https_proxy", "http://proxy.example:3128")
    assert registry._hub_address() == ("proxy.example", 3128)
    monkeypatch.setenv("no_proxy", "huggingface.co")
    assert registry._hub_address() == ("huggingface.co", 443)


# --------------------------------------------------------------------------------- max_new_tokens
@pytest.mark.parametrize("value,error", [(0, ValueError), (-5, ValueError), (1.5, TypeError),
                                         (True, TypeError), ("3", TypeError)])
def test_max_new_tokens_must_be_positive(value: Any, error: type[Exception]) -> None:
    with pytest.raises(error, match=r"max_new_tokens must be"):
        score_items(None, None, [], max_new_tokens=value)


# ------------------------------------------------------------------------------ model import graph
def _model_imports() -> dict[str, set[str]]:
    """For each module of icl_tokens.models, the sibling modules it imports (anywhere in it)."""
    folder = Path(M.__file__).parent
    names = {p.stem for p in folder.glob("*.py") if p.stem != "__init__"}
    graph: dict[str, set[str]] = {}
    for name in names:
        tree = ast.parse((folder / f"{name}.py").read_text(encoding="utf-8"))
        deps: set[str] = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.level == 1:
                deps |= {node.module} if node.module else {a.name for a in node.names}
        graph[name] = deps & names
    return graph


def test_model_modules_import_one_way() -> None:
    graph = _model_imports()
    assert "tokenizers" not in graph["gguf_cache"] and "gguf_cache" in graph["tokenizers"]

    def reaches(start: str, goal: str, seen: set[str]) -> bool:
        return any(d == goal or (d not in seen and reaches(d, goal, seen | {d}))
                   for d in graph[start])

    assert [m for m in graph if reaches(m, m, set())] == []


def test_bos_names_stay_public() -> None:
    for name in ("adds_bos", "fix_saved_tokenizer", "remove_bos_post_processor"):
        assert getattr(T, name) is getattr(bos, name)
    assert M.adds_bos is bos.adds_bos
    assert M.remove_bos_post_processor is bos.remove_bos_post_processor
