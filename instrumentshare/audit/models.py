"""The append-only, hash-chained audit trail.

Design (see README, "Audit trail"): every target has its own chain (a *stream*, e.g.
``booking:42``). Writing an event locks only that stream's head row, so independent writers
never queue on one global row. Afterwards a single sealer (a periodic task) appends every
committed event, in the order it finds them, to one global *seal* chain; that second chain
catches a whole stream deleted, and ties all streams into one hash that can be published.

Rows never change: the models refuse, and triggers in the database refuse UPDATE and DELETE
(PostgreSQL and SQLite alike).
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _

from instrumentshare.core.time import SafeDateTimeField

GENESIS_HASH = "0" * 64


class AppendOnlyError(Exception):
    pass


class AppendOnlyQuerySet(models.QuerySet):
    def update(self, **kwargs):
        raise AppendOnlyError("audit rows are append-only")

    def delete(self):
        raise AppendOnlyError("audit rows are append-only")


class AppendOnlyModel(models.Model):
    objects = AppendOnlyQuerySet.as_manager()

    class Meta:
        abstract = True

    def save(self, *args, **kwargs):
        if not self._state.adding:
            raise AppendOnlyError(f"{type(self).__name__} rows are append-only")
        kwargs["force_insert"] = True
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise AppendOnlyError(f"{type(self).__name__} rows are append-only")


class AuditStream(models.Model):
    """The head of one target's chain: its last sequence number and hash."""

    # Unique by a constraint, not ``unique=True``: on PostgreSQL that would add a second,
    # pattern-matching index that no query uses, written on every event.
    key = models.CharField(max_length=150)
    last_seq = models.PositiveBigIntegerField(default=0)
    last_hash = models.CharField(max_length=64, default=GENESIS_HASH)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["key"], name="audit_stream_key_unique")]

    def __str__(self) -> str:
        return f"{self.key} #{self.last_seq}"


class AuditEvent(AppendOnlyModel):
    stream_key = models.CharField(max_length=150)
    seq = models.PositiveBigIntegerField()
    occurred_at = SafeDateTimeField(_("time (UTC)"))
    actor = models.ForeignKey(  # (actor, occurred_at) below serves lookups by actor
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+", db_index=False
    )
    actor_repr = models.CharField(max_length=200, blank=True)
    request_id = models.CharField(max_length=80, blank=True)
    action = models.CharField(_("action"), max_length=80)
    target_type = models.CharField(max_length=80)
    target_id = models.CharField(max_length=64)
    target_repr = models.CharField(max_length=300, blank=True)
    before = models.JSONField(null=True, blank=True)
    after = models.JSONField(null=True, blank=True)
    reason = models.TextField(blank=True)
    prev_hash = models.CharField(max_length=64)
    hash = models.CharField(max_length=64)  # unique by a constraint (see AuditStream.key)

    class Meta:
        ordering = ["id"]
        verbose_name = _("audit event")
        verbose_name_plural = _("audit events")
        constraints = [models.UniqueConstraint(fields=["stream_key", "seq"], name="audit_stream_seq_unique"),
                       models.UniqueConstraint(fields=["hash"], name="audit_event_hash_unique")]
        indexes = [
            models.Index(fields=["target_type", "target_id"]),
            models.Index(fields=["action", "occurred_at"]),
            models.Index(fields=["actor", "occurred_at"]),
        ]

    def __str__(self) -> str:
        return f"{self.action} {self.stream_key}#{self.seq}"


class AuditSeal(AppendOnlyModel):
    """One link of the global chain: event ``event_id`` sealed as number ``seq``."""

    seq = models.PositiveBigIntegerField(unique=True)
    event = models.OneToOneField(AuditEvent, on_delete=models.PROTECT, related_name="seal")
    sealed_at = SafeDateTimeField()
    prev_hash = models.CharField(max_length=64)
    hash = models.CharField(max_length=64, unique=True)

    class Meta:
        ordering = ["seq"]

    def __str__(self) -> str:
        return f"seal #{self.seq}"
