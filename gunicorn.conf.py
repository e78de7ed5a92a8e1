"""gunicorn settings for I/O-bound proxying: most of a request is spent waiting on the
upstream, so threads (gthread) keep a worker busy while others wait. Two cores here."""

import os

bind = f"0.0.0.0:{os.environ.get('PORT', '8000')}"
worker_class = "gthread"
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
threads = int(os.environ.get("GUNICORN_THREADS", "8"))
timeout = 30
graceful_timeout = 20
keepalive = 5
accesslog = "-"
# Never log query strings: the access log format leaves them out.
access_log_format = '%(h)s "%(m)s %(U)s" %(s)s %(B)s %(M)sms'
