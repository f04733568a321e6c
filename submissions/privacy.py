"""Sample submissions' part of a person's data export (accounts.extensions.personal_data_sections)."""

from instrumentshare.accounts.privacy import rows

from .models import Attachment, Quote, RequestEvent, SampleRequest


def personal_data(user) -> dict:
    return {
        "sample_requests": rows(
            SampleRequest.objects.filter(requester=user), "id", "instrument_id", "instrument__name_zh", "state",
            "sample_count", "sample_type", "sample_state", "hazards", "safety_statement", "after_use", "note",
            "received_count", "discrepancy", "reason", "rating", "rated_at", "submitted_at", "completed_at"),
        "sample_request_files": rows(Attachment.objects.filter(uploaded_by=user), "id", "request_id", "kind", "name",
                                     "size", "sha256", "uploaded_at"),
        "sample_request_history": rows(RequestEvent.objects.filter(actor=user), "request_id", "move", "state_from",
                                       "state_to", "note", "created_at"),
        "sample_quotes": rows(Quote.objects.filter(created_by=user) | Quote.objects.filter(decided_by=user),
                              "request_id", "total", "currency", "valid_until", "created_at", "decided_at"),
    }
