import re
import threading

# Kinds of request the tests count; the chat service's caching is judged by these numbers.
KINDS = (
    ("users", re.compile(r"^/api/content/chat-service/users/[^/]+/?$")),
    ("lesson_detail", re.compile(r"^/api/content/chat-service/lesson/[^/]+/detail/?$")),
    ("check_access", re.compile(r"^/api/content/chat-service/check-access/?$")),
    ("token", re.compile(r"^/api/token/?$")),
    ("token_refresh", re.compile(r"^/api/token/refresh/?$")),
)
OTHER = "other"

_lock = threading.Lock()  # runserver handles each request on its own thread
_counts = {}


def _zeroed():
    return {kind: 0 for kind, _ in KINDS} | {OTHER: 0}


def snapshot():
    with _lock:
        return dict(_counts)


def reset():
    with _lock:
        _counts.clear()
        _counts.update(_zeroed())


reset()


def _kind(path):
    for kind, pattern in KINDS:
        if pattern.match(path):
            return kind
    return OTHER


class CallCounterMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        # Counted before the view runs, so refused (401/403/404) calls count too: they still cost a round trip.
        if not request.path.startswith("/__test__/"):
            kind = _kind(request.path)
            with _lock:
                _counts[kind] += 1
        return self.get_response(request)
