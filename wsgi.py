"""The WSGI entry point: `gunicorn -c gunicorn.conf.py wsgi:app`."""

from webwidget.app import create_app

app = create_app()
