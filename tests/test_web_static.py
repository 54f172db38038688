"""The web UI's static files: shipped as package data, every module import resolves, pages exist."""

from __future__ import annotations

import configparser
import fnmatch
import re
from pathlib import Path

from vla_server.web.mount import STATIC_DIR

ROOT = Path(__file__).resolve().parent.parent
IMPORT = re.compile(r"""(?:import\s[^'"]*?from\s*|import\s*\(\s*|import\s+)["'](\.{1,2}/[^"']+)["']""")


def _static_files() -> list[Path]:
    return sorted(p for p in STATIC_DIR.rglob("*") if p.is_file())


def test_every_static_file_is_package_data() -> None:
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg")
    globs = [
        g.strip() for g in cfg["options.package_data"]["vla_server.web"].replace("\n", ",").split(",") if g.strip()
    ]
    base = STATIC_DIR.parent
    missing = [
        str(p.relative_to(base))
        for p in _static_files()
        if not any(
            fnmatch.fnmatch(str(p.relative_to(base)), g) and p.relative_to(base).parent == Path(g).parent for g in globs
        )
    ]
    assert not missing, f"static files not covered by setup.cfg [options.package_data] vla_server.web: {missing}"


def test_module_imports_resolve() -> None:
    scripts = [p for p in _static_files() if p.suffix == ".js"]
    assert len(scripts) >= 8
    for js in scripts:
        for rel in IMPORT.findall(js.read_text()):
            assert (js.parent / rel).resolve().is_file(), (
                f"{js.relative_to(STATIC_DIR)} imports {rel}, which does not exist"
            )


def test_index_references_exist() -> None:
    html = (STATIC_DIR / "index.html").read_text()
    refs = re.findall(r'(?:src|href)="([^"#:]+)"', html)
    assert "js/app.js" in refs and "style.css" in refs
    for ref in refs:
        assert (STATIC_DIR / ref).is_file(), ref
    pages = re.findall(r'data-page="(\w+)"', html)
    app = (STATIC_DIR / "js" / "app.js").read_text()
    for page in pages:
        assert f'import("./pages/{page}.js")' in app and (STATIC_DIR / "js" / "pages" / f"{page}.js").is_file(), page
