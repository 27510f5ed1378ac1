"""The front end's layout, read from its files: feature folders like the Python packages, every page
script an ES module whose imports resolve, every file a page or route names exists, and every
request a script makes goes through pageFetch (static/common/csrf.js), so writes carry the token."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent.parent
STATIC = REPO / "static"
TEMPLATES = REPO / "templates"
FEATURES = {"common", "inspect", "runs", "studies"}
SCRIPT_TAG = re.compile(r"<script\b([^>]*)>")
STATIC_URL = re.compile(r"/static/([\w/.-]+\.(?:js|css))")
IMPORT = re.compile(r'^import\s+(?:\{([^}]*)\}\s+from\s+)?"([^"]+)";', re.MULTILINE)
EXPORT = re.compile(r"^export\s+(?:async\s+)?(?:function|const|let|class)\s+([\w$]+)", re.MULTILINE)
TEMPLATE_NAME = re.compile(r'"((?:common|inspect|runs|studies)/[\w]+\.html)"')


def scripts() -> list[Path]:
    return sorted(p for p in STATIC.rglob("*.js") if "vendor" not in p.relative_to(STATIC).parts)


def templates() -> list[Path]:
    return sorted(TEMPLATES.rglob("*.html"))


def test_static_and_templates_have_feature_folders_only() -> None:
    static = {p.name for p in STATIC.iterdir()}
    assert static == FEATURES | {"vendor"}, static
    assert {p.name for p in TEMPLATES.iterdir()} == FEATURES
    for folder in FEATURES:
        assert any((STATIC / folder).iterdir()) and any((TEMPLATES / folder).iterdir()), folder


def test_every_page_script_is_a_module_or_data_or_vendor() -> None:
    seen = 0
    for page in templates():
        for attrs in SCRIPT_TAG.findall(page.read_text(encoding="utf-8")):
            seen += 1
            if 'type="application/json"' in attrs or 'src="/vendor/' in attrs:
                continue
            assert 'type="module"' in attrs and 'src="/static/' in attrs, (page.name, attrs)
    assert seen > 10


def test_every_named_static_file_and_template_exists() -> None:
    sources = [*templates(), *(REPO / "app").rglob("*.py")]
    named = {m for p in sources for m in STATIC_URL.findall(p.read_text(encoding="utf-8"))}
    assert {"common/style.css", "inspect/inspect.js", "runs/detail.js"} <= named
    assert [n for n in named if not (STATIC / n).is_file()] == []
    names = {m for p in sources for m in TEMPLATE_NAME.findall(p.read_text(encoding="utf-8"))}
    assert {"common/base.html", "inspect/inspect.html", "studies/detail.html"} <= names
    assert [n for n in names if not (TEMPLATES / n).is_file()] == []


def test_imports_resolve_to_exported_names_and_every_script_is_used() -> None:
    exports = {p: set(EXPORT.findall(p.read_text(encoding="utf-8"))) for p in scripts()}
    reached = set()
    for page in templates():
        for url in STATIC_URL.findall(page.read_text(encoding="utf-8")):
            reached.add((STATIC / url).resolve())
    todo = [p for p in reached if p.suffix == ".js"]
    while todo:
        script = todo.pop()
        for names, target in IMPORT.findall(script.read_text(encoding="utf-8")):
            assert target.startswith("./") or target.startswith("../"), (script.name, target)
            path = (script.parent / target).resolve()
            assert path in exports, f"{script.relative_to(STATIC)} imports a missing {target}"
            wanted = {n.strip() for n in names.split(",") if n.strip()}
            assert wanted <= exports[path], (script.relative_to(STATIC), wanted - exports[path])
            if path not in reached:
                reached.add(path)
                todo.append(path)
    unused = [str(p.relative_to(STATIC)) for p in scripts() if p.resolve() not in reached]
    assert unused == []


def test_every_request_goes_through_page_fetch() -> None:
    """A bare fetch() would send a write without the CSRF header: the server refuses it (403)."""
    csrf = STATIC / "common" / "csrf.js"
    bare = [
        f"{p.relative_to(STATIC)}:{n}"
        for p in scripts()
        if p != csrf
        for n, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1)
        if re.search(r"(?<![\w.])fetch\(", line)
    ]
    assert bare == []
    assert "X-CSRF-Token" in csrf.read_text(encoding="utf-8")
