"""Template overrides: an owner's folder of templates shadows the built-in ones by name.

WIDGET_TEMPLATE_DIR applies to every widget (a ChoiceLoader in front of `templates/`);
a widget's own `template_dir` (widgets file) applies to requests for that widget only,
through an overlay environment per folder, so compiled templates never mix between widgets.
"""

from __future__ import annotations

from pathlib import Path

from flask import Flask, current_app, has_request_context, request
from flask.templating import Environment
from jinja2 import ChoiceLoader, FileSystemLoader


class WidgetEnvironment(Environment):
    """Loads templates from the current widget's override folder first, if it has one."""

    def _load_template(self, name, globals):  # noqa: A002 - Jinja's own signature
        overlay = self._widget_overlay()
        if overlay is not None and overlay is not self:
            return overlay._load_template(name, globals)
        return super()._load_template(name, globals)

    def _widget_overlay(self) -> Environment | None:
        if not has_request_context() or not request.view_args:
            return None
        widget_id = request.view_args.get("widget")
        widget = current_app.extensions.get("webwidget.widgets", {}).get(widget_id)
        folder = getattr(widget, "template_dir", None)
        if not folder:
            return None
        overlays = self.__dict__.setdefault("_overlays", {})
        if folder not in overlays:
            overlays[folder] = self.overlay(
                loader=ChoiceLoader([FileSystemLoader(folder), self.loader])
            )
            overlays[folder]._overlays = {folder: overlays[folder]}
        return overlays[folder]


def init_app(app: Flask, template_dir: str | None) -> None:
    """Install the override-aware environment; call before anything renders a template."""
    if "jinja_env" in app.__dict__:
        raise RuntimeError("overrides.init_app must run before the Jinja environment is created")
    app.jinja_environment = WidgetEnvironment  # type: ignore[misc]
    if template_dir:
        folder = Path(template_dir).resolve()
        if not folder.is_dir():
            from .settings import SettingsError

            raise SettingsError(
                "webwidget cannot start; fix this setting:\n"
                f"  WIDGET_TEMPLATE_DIR: {str(folder)!r} is not a folder"
            )
        # The app's own loader is what Flask consults first; put the owner's folder before it.
        app.jinja_loader = ChoiceLoader(  # type: ignore[misc]
            [FileSystemLoader(str(folder)), FileSystemLoader(app.template_folder)]  # type: ignore[arg-type]
        )
