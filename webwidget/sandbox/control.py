"""The sandbox control API under /_sandbox/ for tests and benchmarks (not ChatCaptain's).

See README.md in this package for every endpoint.
"""

from __future__ import annotations

import time

from flask import Blueprint, abort, jsonify, request
from pydantic import ValidationError
from werkzeug.wrappers import Response

from . import faults
from .state import get_state

bp = Blueprint("sandbox_control", __name__, url_prefix="/_sandbox")


@bp.post("/reset")
def reset() -> Response:
    """Clear faults, counters and the clock offset; conversations stay."""
    get_state().store.reset_control()
    return jsonify({"ok": True})


@bp.get("/stats")
def stats() -> Response:
    """Requests that reached each operation, injected faults included."""
    counts = get_state().store.counters()
    return jsonify({"requests": {op: counts.get(op, 0) for op in faults.OPERATIONS}})


@bp.get("/faults")
def get_faults() -> Response:
    """The active fault config, or null."""
    return jsonify({"faults": get_state().store.get_control("faults")})


@bp.put("/faults")
def put_faults() -> tuple[Response, int]:
    """Switch faults on; the body is a FaultConfig."""
    data = request.get_json(silent=True)
    try:
        config = faults.FaultConfig.model_validate(data if isinstance(data, dict) else None)
    except ValidationError as err:
        return jsonify({"error": "Invalid fault config.", "details": str(err)}), 400
    faults.set_faults(get_state().store, config)
    return jsonify({"faults": config.model_dump()}), 200


@bp.delete("/faults")
def delete_faults() -> Response:
    """Switch every fault off."""
    faults.clear_faults(get_state().store)
    return jsonify({"faults": None})


@bp.post("/clock")
def advance_clock() -> tuple[Response, int]:
    """Move the sandbox clock: {"advance": seconds >= 0} and/or {"hold": true|false}.

    A held clock stands still until advanced or released, so a test decides when a bot
    reply falls due.
    """
    data = request.get_json(silent=True)
    data = data if isinstance(data, dict) else {}
    advance = data.get("advance", 0)
    hold = data.get("hold")
    bad_advance = not isinstance(advance, int | float) or isinstance(advance, bool) or advance < 0
    if bad_advance or (hold is not None and not isinstance(hold, bool)) or not (
        "advance" in data or "hold" in data
    ):
        wanted = 'Send {"advance": seconds >= 0} and/or {"hold": true|false}.'
        return jsonify({"error": wanted}), 400
    store = get_state().store
    with store.transaction() as db:
        offset = (store.get_control("clock_offset") or 0.0) + advance
        store.set_control("clock_offset", offset, db)
        if hold is True and store.get_control("clock_held_at") is None:
            store.set_control("clock_held_at", time.time(), db)
        elif hold is False and store.get_control("clock_held_at") is not None:
            # Released where it stood: the offset keeps the clock from jumping forward.
            held_at = store.get_control("clock_held_at")
            store.set_control("clock_offset", offset - (time.time() - held_at), db)
            store.set_control("clock_held_at", None, db)
    return jsonify({"offset": store.get_control("clock_offset"), "now": get_state().now()}), 200


@bp.get("/files/<name>")
def serve_file(name: str) -> Response:
    """A generated media file (image, audio, video, document)."""
    served = get_state().files.get(name)
    if served is None:
        abort(404)
    response = Response(served.data, mimetype=served.mime_type,
                        headers={"Cache-Control": "public, max-age=3600"})
    # Byte ranges, as real file hosts answer them: browsers seek video and audio with them.
    return response.make_conditional(request, accept_ranges=True,
                                     complete_length=len(served.data))
