"""Template overrides: an owner's folder of templates shadows the built-in ones by name.

WIDGET_TEMPLATE_DIR applies to every widget (a ChoiceLoader in front of `templates/`);
a widget's own `template_dir` (widgets file) applies to requests for that widget only,
through an overlay environment per folder, so compiled templates never mix between widgets.

At start-up every override folder is checked, with one warning line per problem naming
the file and the widget: a file whose name is no template of ours (nothing would use it),
and an override that drops an element `id`, `role="log"` or `data-message-id` that htmx,
widget.js or the loader rely on, or the include of a partial that carries them (an
override of `_welcome.html` without `_header_actions.html` leaves "End chat" in the
header after the chat has ended).
"""

from __future__ import annotations

import difflib
import logging
import re
from collections.abc import Mapping
from pathlib import Path

from flask import Flask
from flask.templating import Environment
from jinja2 import BaseLoader, ChoiceLoader, FileSystemLoader

from ..current import current_widget
from ..owner_files import OwnerFileError, refuse_links_below

log = logging.getLogger(__name__)

_JINJA_COMMENT = re.compile(r"\{#.*?#\}", re.S)
# A literal id (not one built by an expression): the hooks htmx, widget.js and labels use.
_LITERAL_ID = re.compile(r"""\bid\s*=\s*["']([A-Za-z][\w-]*)["']""")
_ROLE_LOG = re.compile(r"""\brole\s*=\s*["']log["']""")
# A literal include: `{% include "widget/_x.html" %}` (not one built by an expression).
_INCLUDE = re.compile(r"""\{%-?\s*include\s+["']([^"']+)["']""")


class WidgetEnvironment(Environment):
    """Loads templates from the current widget's override folder first, if it has one."""

    def _load_template(self, name, globals):  # noqa: A002 - Jinja's own signature
        overlay = self._widget_overlay()
        if overlay is not None and overlay is not self:
            return overlay._load_template(name, globals)
        return super()._load_template(name, globals)

    def _widget_overlay(self) -> Environment | None:
        folder = getattr(current_widget(), "template_dir", None)
        if not folder:
            return None
        overlays = self.__dict__.setdefault("_overlays", {})
        if folder not in overlays:
            loaders: list[BaseLoader] = [FileSystemLoader(folder)]
            if self.loader is not None:
                loaders.append(self.loader)
            overlays[folder] = self.overlay(loader=ChoiceLoader(loaders))
            overlays[folder]._overlays = {folder: overlays[folder]}
        return overlays[folder]


def init_app(app: Flask, template_dir: str | None) -> None:
    """Install the override-aware environment; call before anything renders a template."""
    if "jinja_env" in app.__dict__:
        raise RuntimeError("overrides.init_app must run before the Jinja environment is created")
    app.jinja_environment = WidgetEnvironment
    if template_dir:
        folder = Path(template_dir).resolve()
        why = None if folder.is_dir() else f"{str(folder)!r} is not a folder"
        if why is None:
            try:
                # Its templates are rendered and its catalogs read: a link could publish any file.
                refuse_links_below(folder)
            except OwnerFileError as exc:
                why = str(exc)
        if why:
            from ..settings import SettingsError

            raise SettingsError(f"WIDGET_TEMPLATE_DIR: {why}")
        # The app's own loader is what Flask consults first; put the owner's folder before it.
        if app.template_folder is None:
            raise RuntimeError("overrides.init_app needs the app's own template folder")
        app.jinja_loader = ChoiceLoader(
            [FileSystemLoader(str(folder)), FileSystemLoader(app.template_folder)]
        )


def _markup(path: Path) -> str:
    return _JINJA_COMMENT.sub("", path.read_text(encoding="utf-8", errors="replace"))


def required_hooks(source: str) -> list[str]:
    """What an override of this template must keep: its literal ids, role=log, data-message-id."""
    hooks = [f'id="{name}"' for name in dict.fromkeys(_LITERAL_ID.findall(source))]
    if _ROLE_LOG.search(source):
        hooks.append('role="log"')
    if "data-message-id" in source:
        hooks.append("data-message-id")
    return hooks


def _keeps(hook: str, source: str) -> bool:
    if hook.startswith("id="):
        name = re.escape(hook[4:-1])
        return re.search(rf"""\bid\s*=\s*["']{name}["']""", source) is not None
    if hook == 'role="log"':
        return _ROLE_LOG.search(source) is not None
    return hook in source


def needed_includes(source: str, ours: Mapping[str, Path]) -> dict[str, list[str]]:
    """The partials `source` includes by name that carry hooks (themselves or through their
    own includes), each with its hooks: an override keeps the include or the hooks."""
    found: dict[str, list[str]] = {}
    seen: set[str] = set()

    def hooks_of(name: str) -> list[str]:
        if name in seen or name not in ours:
            return []
        seen.add(name)
        text = _markup(ours[name])
        nested = [hook for inner in _INCLUDE.findall(text) for hook in hooks_of(inner)]
        return required_hooks(text) + nested

    for name in dict.fromkeys(_INCLUDE.findall(source)):
        hooks = hooks_of(name)
        if hooks:
            found[name] = hooks
    return found


def _drops(ours_source: str, theirs: str, ours: Mapping[str, Path]) -> list[str]:
    """What an override (`theirs`) leaves out of its template (`ours_source`)."""
    dropped = [h for h in required_hooks(ours_source) if not _keeps(h, theirs)]
    for name, hooks in needed_includes(ours_source, ours).items():
        if name not in theirs and not all(_keeps(h, theirs) for h in hooks):
            dropped.append(f'the include of "{name}"')
    return dropped


def override_problems(folder: str | Path, project: str | Path) -> list[tuple[Path, str]]:
    """Each override file in `folder` that nothing uses or that drops a hook, and why."""
    folder, project = Path(folder), Path(project)
    ours = {p.relative_to(project).as_posix(): p for p in project.rglob("*.html")}
    theirs = {
        p.relative_to(folder).as_posix(): p
        for p in folder.rglob("*.html")
        if p.is_file() and not p.relative_to(folder).parts[0] == "translations"
    }
    sources = {name: _markup(path) for name, path in theirs.items()}
    problems = []
    for name, path in sorted(theirs.items()):
        if name not in ours:
            # The owner's own partial, included by another override, is used after all.
            if any(name in text for other, text in sources.items() if other != name):
                continue
            close = difflib.get_close_matches(name, list(ours), n=1, cutoff=0.6)
            hint = f" (the closest template is {close[0]})" if close else ""
            problems.append((path, f"webwidget has no template {name!r}, so nothing uses it{hint}"))
            continue
        dropped = _drops(_markup(ours[name]), sources[name], ours)
        if dropped:
            problems.append(
                (
                    path,
                    f"the override drops {', '.join(dropped)} from {name} "
                    "(htmx, widget.js and the loader rely on them; see docs/theming.md)",
                )
            )
    return problems


def warn_about_overrides(
    widgets: Mapping[str, object], shared_folder: str | None, project: str | Path
) -> list[str]:
    """Log one warning per problem in every override folder, naming the file and the widget."""
    users: dict[str, list[str]] = {}
    if shared_folder:
        users[str(Path(shared_folder).resolve())] = ["every widget (WIDGET_TEMPLATE_DIR)"]
    for widget_id, widget in widgets.items():
        folder = getattr(widget, "template_dir", None)
        if folder:
            users.setdefault(folder, []).append(f"widget {widget_id!r}")
    lines = []
    for folder, who in users.items():
        for path, why in override_problems(folder, project):
            lines.append(f"{path}: {', '.join(who)}: {why}")
    for line in lines:
        log.warning("%s", line)
    return lines
