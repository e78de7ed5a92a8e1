"""Static assets: fingerprinted URLs, immutable caching, gzip and brotli, no session.

`url_for('static', filename=...)` gains `?v=<content hash>`. A request whose `v` is the
file's current hash is answered with `Cache-Control: public, max-age=31536000, immutable`
(a new file gets a new URL); any other request revalidates (`no-cache` + ETag). Text
assets are compressed once per process, brotli or gzip by `Accept-Encoding`, with
`Vary: Accept-Encoding`. Our own scripts and stylesheets are minified as they are
read (calmjs.parse for scripts, which also shortens local names; rcssmin): the repository
keeps them readable, the wire gets them small, and
the fingerprint is the hash of the bytes served, so a change to a source changes its URL
and ETag. Files named `*.min.js`/`*.min.css` (vendored htmx, whose hash tests check) are
served as they are. The cache is keyed by the file a name resolves to, so aliases of
one file (`a/../x.js`, `./x.js`, `//x.js`, which a proxy forwards raw) share one entry and
one compression, and it holds at most MAX_ASSETS files. Static requests skip the session
store entirely: the session interface returns an empty session for the static path
without reading the store.
"""

from __future__ import annotations

import gzip
import hashlib
import logging
import mimetypes
import os
import threading
from collections import OrderedDict
from dataclasses import dataclass, field

import brotli
import rcssmin
from calmjs.parse import es5
from calmjs.parse.exceptions import ECMASyntaxError
from calmjs.parse.unparsers.es5 import minify_print
from flask import Flask, Response, abort, current_app, request
from werkzeug.security import safe_join

log = logging.getLogger(__name__)

EXTENSION = "webwidget.assets"
IMMUTABLE = "public, max-age=31536000, immutable"
# More files than the static folder ships; the least recently served go first beyond it.
MAX_ASSETS = 256
COMPRESSIBLE = {".css", ".js", ".mjs", ".svg", ".json", ".txt", ".html", ".map", ".xml"}


def minified(filename: str, data: bytes) -> bytes:
    """`data` minified if it is our own script or stylesheet, else unchanged.

    A minifier is a parser of JavaScript and CSS syntax (regular expressions, strings,
    comments, `calc()`): not code to write here. Already minified files stay byte for byte.
    """
    name = os.path.basename(filename).lower()
    if name.endswith((".min.js", ".min.css")):
        return data
    if name.endswith((".js", ".mjs")):
        return minified_script(filename, data)
    if name.endswith(".css"):
        return rcssmin.cssmin(data)
    return data


def minified_script(filename: str, data: bytes) -> bytes:
    """A script without comments and whitespace, its local names shortened (the loader's
    3 KB budget); its globals and property names stay. Our scripts are ES5 (every engine
    a visitor may have): one that is not is served as written, and the log says why."""
    try:
        tree = es5(data.decode("utf-8"))
    except (ECMASyntaxError, UnicodeDecodeError) as error:
        log.warning("%s is served as written: not ES5, so not minified (%s)",
                    os.path.basename(filename), error)
        return data
    return minify_print(tree, obfuscate=True, obfuscate_globals=False).encode("utf-8")


@dataclass
class Asset:
    """One static file as served: its bytes, hash and compressed variants (made on demand)."""

    stamp: tuple[int, int]
    data: bytes
    digest: str
    mimetype: str
    compressible: bool
    variants: dict[str, bytes] = field(default_factory=dict)

    def encoded(self, encoding: str) -> bytes:
        """The body for `encoding` (br, gzip or identity), compressed once and kept."""
        if encoding == "identity":
            return self.data
        body = self.variants.get(encoding)
        if body is None:
            if encoding == "br":
                body = brotli.compress(self.data, quality=11)
            else:
                body = gzip.compress(self.data, compresslevel=9, mtime=0)
            self.variants[encoding] = body
        return body


class Assets:
    """The static folder's files by name, re-read when a file's size or mtime changes."""

    def __init__(self, folder: str, max_assets: int = MAX_ASSETS) -> None:
        self.folder = folder
        self.max_assets = max_assets
        self._lock = threading.Lock()
        self._assets: OrderedDict[str, Asset] = OrderedDict()

    def __len__(self) -> int:
        return len(self._assets)

    def get(self, filename: str) -> Asset | None:
        """The asset for a static filename, or None if there is no such file."""
        path = safe_join(self.folder, filename)
        if path is None:
            return None
        # The key is the file, not the name asked for: every alias of it shares one entry.
        path = os.path.realpath(path)
        try:
            info = os.stat(path)
        except OSError:
            return None
        if not os.path.isfile(path):
            return None
        stamp = (info.st_mtime_ns, info.st_size)
        with self._lock:
            asset = self._assets.get(path)
            if asset is not None and asset.stamp == stamp:
                self._assets.move_to_end(path)
                return asset
        with open(path, "rb") as handle:
            data = minified(path, handle.read())
        extension = os.path.splitext(path)[1].lower()
        asset = Asset(
            stamp=stamp,
            data=data,
            digest=hashlib.sha256(data).hexdigest()[:12],
            mimetype=mimetypes.guess_type(path)[0] or "application/octet-stream",
            compressible=extension in COMPRESSIBLE and len(data) > 256,
        )
        with self._lock:
            self._assets[path] = asset
            self._assets.move_to_end(path)
            while len(self._assets) > self.max_assets:
                self._assets.popitem(last=False)
        return asset


def choose_encoding(accept: str, asset: Asset) -> str:
    """br if accepted, else gzip if accepted, else identity (q=0 refuses a coding)."""
    if not asset.compressible:
        return "identity"
    offered: dict[str, float] = {}
    for item in accept.lower().split(","):
        name, _, params = item.strip().partition(";")
        quality = 1.0
        if params.strip().startswith("q="):
            try:
                quality = float(params.strip()[2:])
            except ValueError:
                quality = 0.0
        offered[name.strip()] = quality
    for encoding in ("br", "gzip"):
        if offered.get(encoding, offered.get("*", 0.0)) > 0:
            return encoding
    return "identity"


def asset_response(asset: Asset, cache_control: str) -> Response:
    """`asset` in the request's best encoding, or 304 if the client's ETag is current."""
    encoding = choose_encoding(request.headers.get("Accept-Encoding", ""), asset)
    etag = f"{asset.digest}-{encoding}"
    if request.if_none_match.contains(etag):
        response = Response(status=304)
    else:
        response = Response(asset.encoded(encoding), mimetype=asset.mimetype)
        if encoding != "identity":
            response.headers["Content-Encoding"] = encoding
    response.set_etag(etag)
    if asset.compressible:
        response.vary.add("Accept-Encoding")
    response.headers["Cache-Control"] = cache_control
    return response


def static_asset(filename: str) -> Asset:
    """The asset served for a static filename (404 if there is none)."""
    asset = current_app.extensions[EXTENSION].get(filename)
    if asset is None:
        abort(404)
    return asset


def serve_static(filename: str) -> Response:
    """Flask's static endpoint, with fingerprint caching and pre-compressed bodies."""
    asset = static_asset(filename)
    fingerprinted = request.args.get("v") == asset.digest
    # An old or missing fingerprint must not pin this content under that URL for a year.
    return asset_response(asset, IMMUTABLE if fingerprinted else "no-cache")


class AssetServingFlask(Flask):
    """Flask, its static files served fingerprinted and pre-compressed (`init_app` first)."""

    def send_static_file(self, filename: str) -> Response:
        """What Flask's static view calls: the asset, cached by its fingerprint."""
        return serve_static(filename)


def init_app(app: Flask) -> Assets:
    """Fingerprint static URLs; the app's send_static_file serves them cached and
    compressed (serve_static)."""
    assets = Assets(app.static_folder or "static")
    app.extensions[EXTENSION] = assets

    @app.url_defaults
    def fingerprint(endpoint: str, values: dict) -> None:
        if endpoint == "static" and "filename" in values and "v" not in values:
            asset = assets.get(values["filename"])
            if asset is not None:
                values["v"] = asset.digest

    return assets
