# syntax=docker/dockerfile:1
# The production image: web (default command), and with another command the Celery worker,
# beat and migrations. See README.md, "Deployment".
#   docker build -t instrumentshare .
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH \
    INSTRUMENTSHARE_VAR_DIR=/srv/instrumentshare/var \
    STATIC_ROOT=/srv/instrumentshare/static \
    MEDIA_ROOT=/srv/instrumentshare/media \
    GUNICORN_BIND=0.0.0.0:8000

# A fixed uid/gid, so volumes and Kubernetes' runAsUser agree with the image.
RUN groupadd --system --gid 10001 instrumentshare \
    && useradd --system --uid 10001 --gid instrumentshare --home-dir /app --no-create-home \
       --shell /usr/sbin/nologin instrumentshare

WORKDIR /app

# The CJK font invoice PDFs embed (billing/pdf.py), from Debian's packages.
RUN apt-get update \
    && apt-get install -y --no-install-recommends fonts-wqy-microhei \
    && rm -rf /var/lib/apt/lists/*

# Dependencies first, from the lock only, so this layer is reused until the lock changes.
COPY requirements.lock ./
RUN python -m venv /opt/venv \
    && pip install -r requirements.lock \
    && (gunicorn --version \
        || (echo "gunicorn is not in requirements.lock: add it to pyproject.toml and run make lock" >&2; exit 1))

# The project itself, without touching the locked dependencies.
COPY . .
RUN pip install --no-deps .

# Static files into STATIC_ROOT at build time. The key is a throwaway that only lets settings load
# with DEBUG off (so whitenoise's compressed, hashed storage is used); no database is touched.
RUN SECRET_KEY=collectstatic-only-not-a-real-key DEBUG=0 python manage.py collectstatic --noinput \
    && mkdir -p /srv/instrumentshare/var /srv/instrumentshare/media \
    && chown -R instrumentshare:instrumentshare /srv/instrumentshare

USER instrumentshare:instrumentshare

EXPOSE 8000
CMD ["gunicorn", "--config", "deploy/gunicorn.conf.py", "instrumentshare.wsgi:application"]
