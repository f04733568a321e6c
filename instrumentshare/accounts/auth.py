"""API authentication: a Bearer token for scripts, or the browser session with CSRF."""

from __future__ import annotations

import logging
import secrets
import time

from django.contrib.auth.models import AnonymousUser
from django.core.cache import cache as shared_cache
from django.core.cache import caches
from django.core.cache.backends.locmem import LocMemCache
from django.http import HttpRequest
from ninja.security import HttpBearer
from ninja.security.apikey import APIKeyCookie
from ninja.throttling import AuthRateThrottle
from ninja.utils import check_csrf

from instrumentshare.accounts.models import ApiToken
from instrumentshare.core.cache import RedisCache
from instrumentshare.core.dependencies import CACHE_DOWN
from instrumentshare.core.errors import Forbidden

logger = logging.getLogger(__name__)

SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}


class BearerTokenAuth(HttpBearer):
    def authenticate(self, request: HttpRequest, token: str):
        from instrumentshare.accounts.services import user_for_token

        found = user_for_token(token)
        if found is None:
            return None
        user, api_token = found
        if api_token.scope == ApiToken.Scope.READ and request.method not in SAFE_METHODS:
            raise Forbidden("insufficient_scope", "This token may only read.")
        request.user = user
        request.api_token = api_token
        return user


class SessionAuth(APIKeyCookie):
    """The logged-in browser session. Writes must carry the CSRF token, as in every page form.

    Unlike ninja's own, a request with no session at all is simply unauthenticated (401), not a
    CSRF failure (403).
    """

    param_name = "sessionid"

    def __init__(self) -> None:
        from django.conf import settings

        self.param_name = settings.SESSION_COOKIE_NAME
        super().__init__(csrf=False)

    def authenticate(self, request: HttpRequest, key: str | None):
        user = getattr(request, "user", None)
        if not key or user is None or not user.is_authenticated or not user.is_active:
            return None
        if request.method not in SAFE_METHODS and check_csrf(request):
            raise Forbidden("csrf_failed", "CSRF check failed: send the X-CSRFToken header with the csrftoken cookie.")
        return user


bearer_auth = BearerTokenAuth()
session_auth = SessionAuth()
API_AUTH = [bearer_auth, session_auth]


class PublicAnonymousUser(AnonymousUser):
    """An anonymous caller on a public route. Truthy, because ninja takes a falsy result as "not logged in"."""

    def __bool__(self) -> bool:
        return True


class Anonymous:
    """The last resort of optional auth: lets a caller with no credentials through as anonymous. A bad
    Bearer token is still a 401 (the client meant to be someone); a stale session cookie reads as
    anonymous, since browsers keep sending one after logout. Not a security scheme of its own in
    the OpenAPI document, which marks these routes' security as optional (``{}``)."""

    openapi_type = None

    def __call__(self, request: HttpRequest):
        if request.META.get("HTTP_AUTHORIZATION"):
            return None
        return PublicAnonymousUser()


# Public routes (the catalog, public availability) still recognise a token or a session.
PUBLIC_AUTH = [bearer_auth, session_auth, Anonymous()]


class _PerThread:
    """An attribute kept per thread. ninja keeps one throttle object per route and stores the
    request's key and history on it between ``allow_request`` and ``wait``; with threaded workers
    (gthread) two requests would otherwise write each other's history under the wrong user's key."""

    def __set_name__(self, owner, name: str) -> None:
        self.name = name

    def __get__(self, instance, owner=None):
        if instance is None:
            return self
        try:
            return getattr(instance._per_thread, self.name)
        except AttributeError:
            raise AttributeError(self.name) from None

    def __set__(self, instance, value) -> None:
        setattr(instance._per_thread, self.name, value)


process_cache = LocMemCache("throttle-fallback", {"MAX_ENTRIES": 100_000})
_degraded_logged_at = [0.0]


def _log_degraded(error: Exception) -> None:
    """One warning a minute per process while the shared cache is down, not one per request."""
    now = time.monotonic()
    if now - _degraded_logged_at[0] >= 60:
        _degraded_logged_at[0] = now
        logger.warning("rate limits: the shared cache is unavailable (%s); counting per process", error)


# KEYS[1]: the window; ARGV: now, the window's start, this request's member, the limit, the key's lifetime (s).
# The count when allowed; when refused, the times left in the window (member, score, member, score …).
_SLIDING_WINDOW = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], 0, ARGV[2])
redis.call('ZADD', KEYS[1], ARGV[1], ARGV[3])
redis.call('EXPIRE', KEYS[1], ARGV[5])
local count = redis.call('ZCARD', KEYS[1])
if count <= tonumber(ARGV[4]) then
    return count
end
redis.call('ZREM', KEYS[1], ARGV[3])
return redis.call('ZRANGE', KEYS[1], 0, -1, 'WITHSCORES')
"""


class UserRateThrottle(AuthRateThrottle):
    """A per-user budget (per token or session user; per address when anonymous), rate from settings.

    One counter per setting and user in the cache, so the API and the pages (``rate_limit`` in
    ``instrumentshare.accounts.ratelimit``) draw on the same budget.
    """

    key = _PerThread()
    history = _PerThread()
    now = _PerThread()
    cache = _PerThread()

    def __init__(self, setting_name: str):
        import threading

        from django.conf import settings

        self._per_thread = threading.local()
        self.setting_name = setting_name
        self.scope = setting_name.lower()
        super().__init__(getattr(settings, setting_name))

    def allow_request(self, request) -> bool:
        from django.conf import settings

        # Read the budget on every request, so a changed setting applies without a restart.
        self.rate = getattr(settings, self.setting_name)
        self.num_requests, self.duration = self.parse_rate(self.rate)
        self.cache = shared_cache
        try:
            backend = caches["default"]   # the backend itself: ``cache`` is a proxy, never an instance of it
            if isinstance(backend, RedisCache):
                return self._allow_in_redis(request, backend)
            return super().allow_request(request)
        except CACHE_DOWN as error:
            # The shared cache (Redis) is down: count in this process instead, so the service stays
            # up with a budget per process (a little looser than one shared budget), and say so.
            _log_degraded(error)
            self.cache = process_cache
            return super().allow_request(request)

    def _allow_in_redis(self, request, backend: RedisCache) -> bool:
        """ninja's sliding window (at most N requests in any period), kept as a sorted set of request
        times in Redis: trimmed, counted and extended by one Lua script, atomically and in one round trip
        with one reply (ninja's own reads the whole history and writes it back, two round trips that
        concurrent requests can interleave). A refused request is taken out again, so it does not use up
        the budget, and the script answers with the window's times, which ``wait()`` reads."""
        self.key = self.get_cache_key(request)
        self.now = self.timer()
        member = f"{self.now:.6f}:{secrets.token_hex(4)}"
        script, key = backend.script(f"{self.key}:window", _SLIDING_WINDOW)
        answer = script(keys=[key], args=[repr(self.now), repr(self.now - self.duration), member,
                                          self.num_requests, int(self.duration) + 1])
        if not isinstance(answer, list):
            return True
        self.history = sorted((float(score) for score in answer[1::2]), reverse=True)  # for wait()
        return False

    def get_cache_key(self, request):
        user = getattr(request, "auth", None) or getattr(request, "user", None)
        ident = f"user-{user.pk}" if getattr(user, "pk", None) else f"ip-{self.get_ident(request)}"
        return f"throttle_{self.scope}_{ident}"
