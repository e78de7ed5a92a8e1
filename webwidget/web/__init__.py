"""The HTTP edge: what a request meets between the browser and the domain.

The iframe page and its htmx fragments (views), the loader for host pages and what the
page needs to talk to it (embedding), error pages (errors), response headers and the
CSRF check (security), abuse limits (limits; their storage is in shared/), the visitor's language
(i18n, languages), site owners' template overrides (overrides), the theme's stylesheets
(theming), static assets (assets), and demo mode with its theme gallery (demo, gallery).
The factory in `webwidget/__init__.py` wires them in; nothing else imports this folder.
"""
