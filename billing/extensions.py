"""Billing's extension points (see ``instrumentshare.core.extensions``): where higher apps hook in."""

from instrumentshare.core.extensions import ExtensionPoint

period_closed = ExtensionPoint(
    "billing.period_closed",
    "(period: BillingPeriod) -> None, called after the close of a month has committed: refresh what is "
    "computed from that month's invoices (the oversight figures).",
)
