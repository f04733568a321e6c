from django.conf import settings
from django.contrib.staticfiles import finders
from django.core.cache import cache
from django.db import connection
from django.http import FileResponse, JsonResponse
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.cache import cache_control
from django.views.decorators.http import require_safe

from instrumentshare.accounts import queries


def home(request):
    context = {"roles": queries.roles_of(request.user)}
    if request.user.is_authenticated:
        context["memberships"] = queries.memberships_of(request.user)
    return render(request, "portal/home.html", context)


@require_safe
@cache_control(max_age=86400, public=True)
def favicon(request):
    """Browsers ask for /favicon.ico on every site whatever the page says: the icon, not a 404."""
    return FileResponse(open(finders.find("favicon.ico"), "rb"), content_type="image/x-icon")  # noqa: SIM115


def audit_heads(request):
    """Public: the audit trail's seal head at the end of each of the last 30 days (platform zone).
    Anyone may note one; ``verify_audit --expect-head HASH`` then proves the trail was not rewritten
    since (see ``instrumentshare.audit.services``)."""
    from instrumentshare.audit.services import daily_heads

    zone = timezone.get_default_timezone()
    heads = daily_heads(days=30, today=timezone.localdate(timezone=zone), zone=zone)
    return render(request, "portal/audit_heads.html", {"heads": heads})


def healthz(request):
    """The process is up. Touches nothing else, so a slow database never restarts web replicas."""
    return JsonResponse({"status": "ok"})


def readyz(request):
    """Ready to serve: the database answers, and Redis when it is configured."""
    checks = {}
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        checks["database"] = "ok"
    except Exception as error:  # noqa: BLE001 - any failure means not ready
        checks["database"] = f"error: {type(error).__name__}"
    if settings.REDIS_URL:
        try:
            cache.set("readyz", "1", 5)
            checks["redis"] = "ok" if cache.get("readyz") == "1" else "error: no round trip"
        except Exception as error:  # noqa: BLE001
            checks["redis"] = f"error: {type(error).__name__}"
        checks["worker"] = _worker_state()
    required = {"database", "redis"} | ({"worker"} if settings.READYZ_REQUIRE_WORKER else set())
    ready = all(value == "ok" for key, value in checks.items() if key in required)
    return JsonResponse({"status": "ok" if ready else "unavailable", "checks": checks}, status=200 if ready else 503)


def _worker_state() -> str:
    """ok when a worker ran the heartbeat task recently; workers being down does not stop bookings
    (the outbox keeps their mail), so by default it is reported, not required."""
    import time

    from portal.tasks import HEARTBEAT_KEY

    try:
        beat = cache.get(HEARTBEAT_KEY)
    except Exception as error:  # noqa: BLE001
        return f"error: {type(error).__name__}"
    if beat is None:
        return "no heartbeat yet"
    age = time.time() - float(beat)
    return "ok" if age <= settings.WORKER_HEARTBEAT_MAX_AGE else f"stale ({int(age)} s)"


def not_found(request, exception=None):
    if request.path.startswith("/api/"):
        return JsonResponse({"code": "not_found", "detail": "No such API route."}, status=404)
    return render(request, "core/error.html", {"status": 404, "message": "Not found"}, status=404)


def server_error(request):
    if request.path.startswith("/api/"):
        return JsonResponse({"code": "server_error", "detail": "Internal error; it has been logged."}, status=500)
    return render(request, "core/error.html", {"status": 500, "message": "Server error"}, status=500)
