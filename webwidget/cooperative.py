"""CPU-heavy work kept off a gevent worker's event loop.

Under gunicorn's gevent worker every request of a worker runs on one OS thread, taking
turns only where one waits: a long conversation's list parsed there (a 7.7 MB list takes
a few hundred milliseconds) makes every other request of the worker wait for it. Run in
one of gevent's native threads instead, it shares the interpreter with the event loop,
whose thread gets the GIL back every few milliseconds, so the others are served meanwhile.
Elsewhere (gthread workers, the development server) a job runs where it is called.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def is_cooperative() -> bool:
    """Whether this process runs on gevent's monkey-patched threads (the gevent worker)."""
    try:
        from gevent import monkey
    except ImportError:
        return False
    return bool(monkey.is_module_patched("threading"))


def off_the_event_loop(job: Callable[[], T]) -> T:
    """`job()`, in a native thread when the process is cooperative; its exception raised."""
    if not is_cooperative():
        return job()
    import gevent

    result: T = gevent.get_hub().threadpool.apply(job)
    return result
