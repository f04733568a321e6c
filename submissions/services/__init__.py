"""Every write of a sample request (``from submissions import services``)."""

from .moves import (
    ItemIn,
    accept_quote,
    cancel_request,
    complete_request,
    decline_quote,
    deliver_results,
    quote_request,
    receive_many,
    receive_samples,
    reject_request,
    schedule_work,
    start_work,
)
from .requests import add_attachment, attachment_for, create_request, file_type, rate_request, service_of
from .setup import add_analysis, set_sample_service

__all__ = [
    "ItemIn", "accept_quote", "add_analysis", "add_attachment", "attachment_for", "cancel_request",
    "complete_request",
    "create_request", "decline_quote", "deliver_results", "file_type", "quote_request", "rate_request",
    "receive_many", "receive_samples", "reject_request", "schedule_work", "service_of", "set_sample_service",
    "start_work",
]
