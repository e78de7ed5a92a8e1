# webwidget under gunicorn, as the Procfile runs it, in a small Debian image.
#
#   podman build -t webwidget .        (or docker build; compose.yaml adds Redis)
#
# The base is Debian's own bookworm-slim. Where no registry can be reached,
# scripts/container_check.sh makes that base locally from Debian's packages.

# --- build: the wheel (templates/ and static/ inside) and every dependency, in a venv
FROM debian:bookworm-slim AS build
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3 python3-venv \
    && rm -rf /var/lib/apt/lists/*
RUN python3 -m venv /opt/webwidget
# Behind a TLS-intercepting proxy, pass its CA bundle's path inside the build:
# --build-arg PIP_CERT=/path (scripts/container_check.sh mounts the host's bundle).
ARG PIP_CERT
WORKDIR /src
# The pinned dependencies first: this layer stays cached while only the code changes.
COPY requirements.txt ./
RUN /opt/webwidget/bin/pip install --no-cache-dir --disable-pip-version-check -r requirements.txt
COPY pyproject.toml README.md ./
COPY webwidget ./webwidget
COPY templates ./templates
COPY static ./static
RUN /opt/webwidget/bin/pip install --no-cache-dir --disable-pip-version-check --no-deps .

# --- run: the venv, the WSGI entry point and gunicorn's settings; no compiler, no pip cache
FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3 \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home-dir /srv/webwidget --shell /usr/sbin/nologin webwidget \
    && install -d -o webwidget -g webwidget -m 0750 /srv/webwidget \
    && install -d -o webwidget -g webwidget -m 0700 /var/lib/webwidget
COPY --from=build /opt/webwidget /opt/webwidget
COPY wsgi.py gunicorn.conf.py /srv/webwidget/
WORKDIR /srv/webwidget
ENV PATH=/opt/webwidget/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PORT=8000 \
    WEBWIDGET_INSTANCE_PATH=/var/lib/webwidget
USER webwidget
EXPOSE 8000
VOLUME ["/var/lib/webwidget"]
# Liveness only: /readyz would take the container down with the upstream.
HEALTHCHECK --interval=30s --timeout=3s --start-period=20s --retries=3 \
    CMD ["python3", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('PORT', '8000'), timeout=2)"]
CMD ["gunicorn", "-c", "gunicorn.conf.py", "wsgi:app"]
