"""Is it working? What operators read: JSON logs with request ids and redacted secrets
(logs), gunicorn's access log as JSON (access_log), Prometheus metrics (metrics), and
liveness and readiness (health). The factory wires them in; the domain never imports
them, it is handed callbacks (the upstream's observers) instead.
"""
