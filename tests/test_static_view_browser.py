"""The static view in a real browser: headless Chromium renders a saved view, and the rendered
DOM shows every token with its category colour (as the browser computed it from the page's
stylesheet), the hidden keys struck through, and the hover text.

A probe script is appended to a *copy* of the saved page (the view itself has none); it writes
each token's computed style into attributes, and ``chromium --headless --dump-dom`` prints the
DOM after it ran. The test skips, saying why, when no Chromium/Chrome binary is found (the CI
script installs Debian's ``chromium`` where it can).
"""

from __future__ import annotations

from html.parser import HTMLParser
from pathlib import Path

import numpy as np

from icl_tokens.categorize import categorize
from icl_tokens.engine import Item, LabelSet
from icl_tokens.explore import save_view, static_view, token_infos
from icl_tokens.explore.static import CATEGORY_COLORS, color_kinds
from icl_tokens.models import gpt2_tokenizer
from icl_tokens.prompts import build_prompt
from icl_tokens.tasks import Example, load_task

PROBE = """<script>
for (const el of document.querySelectorAll('.icl-tok[data-pos]')) {
  const s = getComputedStyle(el);
  el.setAttribute('data-bg', s.backgroundColor);
  el.setAttribute('data-bgimg', s.backgroundImage);
  el.setAttribute('data-deco', s.textDecorationLine);
  el.setAttribute('data-w', String(el.getBoundingClientRect().width));
}
document.body.setAttribute('data-probed', '1');
</script>"""


def _rgb(hex_color: str) -> str:
    h = hex_color.lstrip("#")
    return f"rgb({int(h[0:2], 16)}, {int(h[2:4], 16)}, {int(h[4:6], 16)})"


class _Dom(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tokens: list[dict] = []
        self.probed = False
        self._open: dict | None = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "body" and a.get("data-probed") == "1":
            self.probed = True
        if tag == "span" and "data-pos" in a:
            a["text"] = ""
            self.tokens.append(a)
            self._open = a
        elif tag == "span" and self._open is not None:
            self._open = None  # the mass bar inside a token ends its text

    def handle_data(self, data):
        if self._open is not None:
            self._open["text"] += data


def _view(tmp_path: Path) -> tuple[Path, list, np.ndarray]:
    """A saved view of an SST-2 prompt (GPT-2's tokenizer), some keys hidden, a mass vector."""
    task, tok = load_task("sst2"), gpt2_tokenizer()
    demos = [Example("d0", {"text": "a warm and funny film ."}, "1"),
             Example("d1", {"text": "the plot is a mess of the worst kind .\nyes"}, "0")]
    tp = categorize(build_prompt(task, demos, Example("t", {"text": "dull ."}, "0")), tok)
    item = Item.from_prompt(tp, LabelSet.for_task(task, tok))
    tokens = token_infos(item, tok, tp)
    hidden = (np.asarray(item.demo) >= 0) & item.has("content")
    mass = np.linspace(0.0, 1.0, len(tokens))
    page = static_view(tokens, hidden=hidden, token_mass=mass / mass.sum(),
                       category_mass={"template": 0.3, "content": 0.1},
                       label_probs={"Positive": 0.4, "Negative": 0.5}, title="browser test")
    return save_view(tmp_path / "view.html", page), tokens, hidden


def test_chromium_renders_every_token_with_its_category_colour(tmp_path, chromium_dom):
    saved, tokens, hidden = _view(tmp_path)
    probe = tmp_path / "probe.html"
    probe.write_text(saved.read_text(encoding="utf-8").replace("</body>", PROBE + "</body>"),
                     encoding="utf-8")
    html = chromium_dom(probe)
    dom = _Dom()
    dom.feed(html)
    assert dom.probed, "the probe script did not run; the browser printed:\n" + html[:500]
    assert [int(t["data-pos"]) for t in dom.tokens] == list(range(len(tokens)))
    multi = 0
    for t, info in zip(dom.tokens, tokens):
        kinds = color_kinds(info.categories)
        where = f"token {info.position} {info.text!r} {kinds}"
        assert t["data-cats"].split() == list(info.categories), where
        if kinds != ("unknown",):
            assert t["data-bg"] == _rgb(CATEGORY_COLORS[kinds[0]]), (where, t["data-bg"])
        if len(kinds) > 1:
            multi += 1
            for k in kinds:
                assert _rgb(CATEGORY_COLORS[k]) in t["data-bgimg"], (where, t["data-bgimg"])
        else:
            assert t["data-bgimg"] == "none", where
        assert ("line-through" in t["data-deco"]) == bool(hidden[info.position]), where
        assert float(t["data-w"]) > 0, f"{where} has no rendered width"
        assert f"id={info.token_id}" in t["title"] and "categories:" in t["title"], where
    assert multi > 0, "the prompt should have a multi-category token (a newline)"
    assert hidden.any()
