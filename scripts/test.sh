#!/usr/bin/env bash
# Installs everything the tests need on a fresh Debian machine, then runs them.
# Servers the tests use (the ChatCaptain sandbox, redis-server, the widget itself)
# are started by the test fixtures on free loopback ports.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v redis-server >/dev/null 2>&1 || need_apt+=(redis-server)
[ -x /usr/bin/chromium ] || need_apt+=(chromium)
# tests/test_nginx.py runs Debian's nginx in front of gunicorn, with a throwaway TLS cert.
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || need_apt+=(nginx)
command -v openssl >/dev/null 2>&1 || need_apt+=(openssl)
# tests/browser/test_engines.py: the core journey in Firefox (over WebDriver BiDi, driven by
# puppeteer-core on Node) and in WebKit (WebKitGTK's WebDriver and MiniBrowser under Xvfb).
[ -x /usr/bin/firefox-esr ] || need_apt+=(firefox-esr)
[ -x /usr/bin/WebKitWebDriver ] || need_apt+=(webkit2gtk-driver)
command -v Xvfb >/dev/null 2>&1 || need_apt+=(xvfb)
command -v npm >/dev/null 2>&1 || need_apt+=(nodejs npm)
if [ ${#need_apt[@]} -gt 0 ]; then
    if [ "$(id -u)" -eq 0 ]; then SUDO=""; else SUDO="sudo"; fi
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get -o DPkg::Lock::Timeout=600 install -y -qq \
        "${need_apt[@]}" >/dev/null
fi
# The versions pinned in package-lock.json; puppeteer-core downloads no browser.
[ -d tests/browser/engines/node_modules/puppeteer-core ] ||
    (cd tests/browser/engines && npm ci --no-audit --no-fund --loglevel=error)

[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install -q --disable-pip-version-check -e ".[test]"

# Lint and type checks first: a finding fails the run before any test starts (set -e).
.venv/bin/ruff check .
.venv/bin/mypy
exec .venv/bin/python -m pytest -n 2 "$@"
