"""The explorer as a person sees it: served by Voila, driven in headless Chromium (Playwright).

Used by the browser test and ``benchmarks/bench_explore.py --browser``: write a one-cell app
notebook (:func:`app_notebook`), serve it (:func:`serve_voila`, a context manager that stops the
server it started), open it in a Playwright page (:func:`open_explorer`) and time a click until
the explorer's status line shows the new update (:func:`click_latency`: the time from the click
to the changed DOM, measured in the page).

Needs ``voila`` and ``playwright`` (``pip install voila playwright``) and a Chromium binary
(Debian's ``chromium``; :func:`find_chromium`); nothing here downloads a browser.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Iterator

__all__ = ["BROWSERS", "CHROMIUM_ARGS", "app_notebook", "click_latency", "find_chromium",
           "open_explorer", "serve_voila"]

#: Chromium/Chrome binaries looked for on PATH (``ICL_TOKENS_BROWSER`` overrides).
BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome")
#: Arguments for a headless Chromium in a container.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"]

_STATUS = ".icl-explorer .icl-status"


def find_chromium() -> str | None:
    """The Chromium binary (``ICL_TOKENS_BROWSER`` or the first of :data:`BROWSERS` on PATH)."""
    env = os.environ.get("ICL_TOKENS_BROWSER")
    if env:
        return env
    return next((p for p in map(shutil.which, BROWSERS) if p), None)


def app_notebook(path: str | Path, model: str, task: str = "sst2", *, seed: int = 0,
                 k: int = 4, example: int = 0, scoring: str = "generate") -> Path:
    """A one-cell notebook that shows ``explore(model, task=..., ...)`` (for Voila)."""
    p = Path(path)
    if p.suffix != ".ipynb":
        raise ValueError(f"{p} should end in .ipynb (Voila serves notebooks).")
    args = ", ".join([repr(str(model)), f"task={task!r}", f"seed={seed}", f"k={k}",
                      f"example={example}", f"scoring={scoring!r}"])
    source = ("import torch\nfrom icl_tokens import explore\n\ntorch.set_grad_enabled(False)\n"
              f"explore({args})")
    nb = {"cells": [{"cell_type": "code", "execution_count": None, "id": "explorer",
                     "metadata": {}, "outputs": [], "source": source}],
          "metadata": {"kernelspec": {"display_name": "Python 3", "language": "python",
                                      "name": "python3"}},
          "nbformat": 4, "nbformat_minor": 5}
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(json.dumps(nb, indent=1), encoding="utf-8")
    return p


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_port(port: int, proc: subprocess.Popen, timeout: float, log: Path) -> None:
    """Wait until the server accepts connections (a GET of the app would run the notebook)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"voila exited with {proc.returncode}; its log ({log}):\n"
                               + log.read_text(errors="replace")[-3000:])
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=2):
                return
        except OSError:
            time.sleep(0.3)
    raise TimeoutError(f"voila did not listen on port {port} within {timeout:.0f} s; see {log}.")


@contextlib.contextmanager
def serve_voila(notebook: str | Path, *, env: dict[str, str] | None = None,
                timeout: float = 60.0) -> Iterator[str]:
    """Serve ``notebook`` with Voila on a free localhost port; yields its URL and stops the
    server (the process it started) on exit. ``env`` is added to this process' environment."""
    nb = Path(notebook).resolve()
    port = _free_port()
    log = nb.with_suffix(".voila.log")
    cmd = [sys.executable, "-m", "voila", str(nb), "--no-browser", f"--port={port}",
           "--Voila.ip=127.0.0.1", "--show_tracebacks=True"]
    with open(log, "w", encoding="utf-8") as out:
        proc = subprocess.Popen(cmd, cwd=nb.parent, stdout=out, stderr=subprocess.STDOUT,
                                env={**os.environ, **(env or {})})
    url = f"http://127.0.0.1:{port}/"
    try:
        _wait_port(port, proc, timeout, log)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=15)


def open_explorer(page: Any, url: str, *, timeout: float = 180.0) -> float:
    """Load the Voila app in a Playwright ``page`` and wait for the explorer's first update;
    returns the seconds it took (kernel start, imports, model loading, first forward)."""
    start = time.perf_counter()
    page.goto(url, timeout=timeout * 1000, wait_until="domcontentloaded")
    try:
        page.wait_for_selector(_STATUS, timeout=timeout * 1000)
    except Exception as err:  # a Playwright TimeoutError: say what the page shows instead
        text = page.inner_text("body")[-2000:]
        raise TimeoutError(f"the explorer did not render within {timeout:.0f} s; the page "
                           f"shows:\n{text}") from err
    return time.perf_counter() - start


_CLICK_JS = """async ([sel, status, timeout, value]) => {
  const el = document.querySelector(sel);
  if (!el) throw new Error('no element ' + sel);
  const before = document.querySelector(status).dataset.update;
  const t0 = performance.now();
  const done = new Promise((resolve, reject) => {
    const check = () => {
      const s = document.querySelector(status);
      if (s && s.dataset.update !== before) { obs.disconnect(); resolve(performance.now() - t0); }
    };
    const obs = new MutationObserver(check);
    obs.observe(document.body, {subtree: true, childList: true, attributes: true,
                                characterData: true});
    setTimeout(() => { obs.disconnect(); reject(new Error('no update after ' + sel)); },
               timeout);
  });
  if (value === null) { el.click(); }
  else { el.value = value; el.dispatchEvent(new Event('change', {bubbles: true})); }
  return await done;
}"""


def click_latency(page: Any, selector: str, *, value: str | None = None,
                  timeout: float = 60.0) -> float:
    """Click ``selector`` (or, with ``value``, choose that option of the ``<select>`` at
    ``selector``) and return the seconds until the status line shows a new update."""
    ms = page.evaluate(_CLICK_JS, [selector, _STATUS, timeout * 1000, value])
    return float(ms) / 1000
