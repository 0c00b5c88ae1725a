"""MkDocs hooks for the zmq_async site (``hooks:`` in mkdocs.yml).

- The README is the home page, its ``docs/...`` links rewritten to the site's pages.
- The build fails, listing them, on public names without a docstring, and on a public module
  without a reference page (a ``::: module`` line). Public: every module path without a
  ``_``-component, the names its ``__all__`` lists (the green modules, whose ``__all__`` is
  all of pyzmq's, re-export ours as ``Name as Name``), and the public methods and properties
  of those classes and of their zmq_async bases. What we inherit from pyzmq is pyzmq's to
  document: those names link to pyzmq's documentation (no inventory: the build is offline).
- Code is highlighted at build time, with Pygments' stylesheet: the site needs no network.
- In the reference, docstrings' Sphinx roles (``:class:`~a.B```) render as code, linked
  when the name is documented, and ``text::`` before a code block as ``text:``.

Griffe reads the sources statically, so the build imports no framework and no zmq_async.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import griffe
from mkdocs.exceptions import PluginError
from mkdocs.structure.files import File, Files
from pygments.formatters import HtmlFormatter  # type: ignore[import-untyped]

PACKAGE = "zmq_async"
ROOT = Path(__file__).resolve().parent.parent

_PYZMQ = "https://pyzmq.readthedocs.io/en/latest/api/"
#: What our classes inherit from, and what our docstrings name: pyzmq's documentation.
PYZMQ_URLS = {
    "zmq.Context": _PYZMQ + "zmq.html#zmq.Context",
    "zmq.Socket": _PYZMQ + "zmq.html#zmq.Socket",
    "zmq.Poller": _PYZMQ + "zmq.html#zmq.Poller",
    "zmq.Frame": _PYZMQ + "zmq.html#zmq.Frame",
    "zmq.ZMQError": _PYZMQ + "zmq.html#zmq.ZMQError",
    "zmq.Again": _PYZMQ + "zmq.html#zmq.Again",
    "zmq.asyncio": _PYZMQ + "zmq.asyncio.html",
    "zmq.eventloop.future": _PYZMQ + "zmq.eventloop.future.html",
    "zmq.eventloop.zmqstream": _PYZMQ + "zmq.eventloop.zmqstream.html",
    "zmq.green": _PYZMQ + "zmq.green.html",
}


def public_modules(package: griffe.Module) -> list[griffe.Module]:
    """The package and its submodules whose dotted path has no ``_``-component."""
    found = [package]
    for name, member in package.members.items():
        if not member.is_alias and member.is_module and not name.startswith("_"):
            found += public_modules(member)  # type: ignore[arg-type]
    return found


def public_names(module: griffe.Module) -> list[str]:
    """``__all__``, or the ``Name as Name`` re-exports of our own objects where griffe cannot
    read ``__all__`` (the green modules compute theirs from pyzmq's)."""
    if module.exports:
        return [str(name) for name in module.exports]
    return [
        name
        for name, member in module.members.items()
        if not name.startswith("_")
        and isinstance(member, griffe.Alias)
        and member.target_path.startswith(module.package.path + ".")
    ]


def load(package: str, search_path: Path) -> griffe.Module:
    """The package, read from its sources (nothing is imported)."""
    root = griffe.load(
        package, search_paths=[str(search_path)], allow_inspection=False, resolve_aliases=True
    )
    assert isinstance(root, griffe.Module)
    return root


def missing_docstrings(root: griffe.Module) -> list[str]:
    """Every public module, public name and public method or property of a public class (its
    own and its bases' in the package) that has no docstring, by its public path."""
    missing: dict[str, str] = {}  # where it is defined: the first public path it has

    def check(obj: griffe.Object | griffe.Alias, public: str) -> None:
        if not obj.docstring:
            defined = obj.final_target.path if isinstance(obj, griffe.Alias) else obj.path
            missing.setdefault(defined, public)

    for module in public_modules(root):
        check(module, module.path)
        for name in public_names(module):
            where = f"{module.path}.{name}"
            if name not in module.members:
                missing.setdefault(f"{where}: in __all__, not defined", "")
                continue
            obj = module.members[name]
            check(obj, where)
            obj = obj.final_target if isinstance(obj, griffe.Alias) else obj
            if isinstance(obj, griffe.Class):
                for member_name, member in obj.all_members.items():
                    if not member_name.startswith("_") and (
                        member.is_function or "property" in member.labels
                    ):
                        check(member, f"{where}.{member_name}")
    return sorted(
        defined if not public or public == defined else f"{public} (defined as {defined})"
        for defined, public in missing.items()
    )


def documented(docs_dir: Path) -> set[str]:
    """The identifiers of the pages' ``::: identifier`` lines."""
    found: set[str] = set()
    for page in docs_dir.rglob("*.md"):
        found.update(re.findall(r"^::: *(\S+)", page.read_text(encoding="utf-8"), re.MULTILINE))
    return found


def on_config(config: Any) -> None:
    root = load(PACKAGE, ROOT)
    missing = missing_docstrings(root)
    if missing:
        raise PluginError(
            f"public names without a docstring ({len(missing)}):\n  " + "\n  ".join(missing)
        )
    unlisted = {m.path for m in public_modules(root)} - documented(Path(config.docs_dir))
    if unlisted:
        raise PluginError("public modules without a reference page: " + ", ".join(sorted(unlisted)))
    autorefs = config.plugins["autorefs"]
    for identifier, url in PYZMQ_URLS.items():
        autorefs.register_url(identifier, url)


#: A README link to a file of the repository: ``[text](path)`` or ``![alt](path)``.
_LINK = re.compile(r"\]\((?![a-z]+:|#)([^)\s#]+)")


def on_files(files: Files, config: Any) -> Files:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    # The README's images and other files outside docs/ (a chart, ...) come along as they are;
    # a Markdown file outside docs/ is no page of the site, and the strict build says so.
    for target in sorted(set(_LINK.findall(readme))):
        path = ROOT / target
        if not target.startswith("docs/") and not target.endswith(".md") and path.is_file():
            files.append(File.generated(config, target, abs_src_path=str(path)))
    files.append(File.generated(config, "index.md", content=readme.replace("](docs/", "](")))
    # Code is highlighted at build time (the theme's highlight.js would load from a CDN).
    css = HtmlFormatter(style="default").get_style_defs(".highlight")
    files.append(File.generated(config, "css/pygments.css", content=css))
    return files


_ROLE = re.compile(r":(?:py:)?[a-z]+:<code>(~?)([\w.]+)(\(\))?</code>")


def _role(match: re.Match[str]) -> str:
    short, target, call = match.groups()
    text = (target.rpartition(".")[2] if short else target) + (call or "")
    if "." not in target:
        return f"<code>{text}</code>"
    # optional: a private target (``_reactor.Reactor``) renders as code, without a warning.
    return f'<autoref identifier="{target}" optional><code>{text}</code></autoref>'


def on_page_content(html: str, page: Any, **kwargs: Any) -> str:
    if not page.file.src_uri.startswith("reference/"):
        return html
    # reStructuredText's "text::" (a code block follows) reads "text:" here, and "::" nothing.
    return _ROLE.sub(_role, html).replace("<p>::</p>", "").replace("::</p>", ":</p>")
