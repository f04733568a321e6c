"""The catalog's part of a person's data export (accounts.extensions.personal_data_sections)."""

from instrumentshare.accounts.privacy import rows

from .models import ListingChangeRequest, Qualification, TrainingRequest


def personal_data(user) -> dict:
    return {
        "qualifications": rows(Qualification.objects.filter(user=user).order_by("id"), "instrument_id",
                               "instrument__name_zh", "granted_at", "expires_at", "revoked_at", "note"),
        "training_requests": rows(TrainingRequest.objects.filter(user=user).order_by("id"), "instrument_id",
                                  "instrument__name_zh", "message", "state", "created_at"),
        "listing_requests": rows(ListingChangeRequest.objects.filter(requested_by=user).order_by("id"),
                                 "instrument_id", "kind", "justification", "requested_at", "state", "decided_at",
                                 "decision_note"),
    }
