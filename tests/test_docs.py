"""The docs build's missing-docstring check (docs/hooks.py), on a tiny package of its own.

scripts/test builds the real site strictly, which proves the check passes on zmq_async; this
proves it would fail, and on exactly what: a check that found nothing would pass that build too.
"""

import importlib.util
import textwrap
from pathlib import Path
from types import ModuleType

import pytest

pytest.importorskip("mkdocs")
pytest.importorskip("griffe")

HOOKS = Path(__file__).resolve().parent.parent / "docs" / "hooks.py"

FIXTURE = {
    "__init__.py": '''
        """A public package."""
        from pkg._impl import Thing, documented, undocumented

        __all__ = ["Thing", "documented", "ghost", "undocumented"]
    ''',
    "_impl.py": '''
        """Private: its names count only where a public module exports them."""
        import json


        class _Base:
            """A private base: its public methods are the subclass's."""

            def inherited(self):
                pass

            def _private(self):
                pass


        class Thing(_Base):
            """Documented."""

            attribute = 1  # attributes need none

            def method(self):
                """Documented."""

            @property
            def prop(self):
                return 1

            def __repr__(self):
                return "Thing"


        class Decoder(json.JSONDecoder):
            """What it inherits from outside the package is not its to document."""


        def documented():
            """Documented."""


        def undocumented():
            pass


        def other():
            pass
    ''',
    # As zmq_async.green: __all__ computed (griffe cannot read it), ours re-exported `X as X`.
    "green.py": """
        import json as _json

        from pkg._impl import Decoder as Decoder
        from pkg._impl import other as other
        from pkg._impl import undocumented as _hidden

        __all__ = list(_json.__all__)
    """,
    "_private.py": """
        def undocumented_but_private():
            pass
    """,
}


def load_hooks() -> ModuleType:
    spec = importlib.util.spec_from_file_location("zmq_async_docs_hooks", HOOKS)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.timeout(30)
def test_missing_docstrings_names_each_public_name_without_one(tmp_path: Path) -> None:
    (tmp_path / "pkg").mkdir()
    for name, source in FIXTURE.items():
        (tmp_path / "pkg" / name).write_text(textwrap.dedent(source))
    hooks = load_hooks()
    assert hooks.missing_docstrings(hooks.load("pkg", tmp_path)) == [
        "pkg.Thing.inherited (defined as pkg._impl._Base.inherited)",
        "pkg.Thing.prop (defined as pkg._impl.Thing.prop)",
        "pkg.ghost: in __all__, not defined",
        "pkg.green",
        "pkg.green.other (defined as pkg._impl.other)",
        "pkg.undocumented (defined as pkg._impl.undocumented)",
    ]
