"""No module of rooms/ imports another in a circle (deferred and type-only imports count)."""

from __future__ import annotations

import runpy
from pathlib import Path

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "import_cycles.py"


def test_rooms_has_no_import_cycles(capsys) -> None:
    main = runpy.run_path(str(SCRIPT))["main"]
    assert main(["rooms"]) == 0, capsys.readouterr().out


def test_the_check_finds_a_cycle(tmp_path, monkeypatch) -> None:
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "a.py").write_text("from pkg.b import B\n")
    (package / "b.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg.a import A\n"
    )
    script = runpy.run_path(str(SCRIPT))
    monkeypatch.setitem(script["main"].__globals__, "ROOT", tmp_path)
    assert script["main"](["pkg"]) == 1
