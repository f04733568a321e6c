"""The errors that mean "a dependency is down", named once for whoever degrades or answers 503."""

try:
    from redis.exceptions import RedisError
except ImportError:  # pragma: no cover - redis is a dependency; the embedded default never raises it
    class RedisError(Exception):
        pass

# The shared cache (Redis) is unreachable: refused, reset, timed out.
CACHE_DOWN = (RedisError, OSError)
