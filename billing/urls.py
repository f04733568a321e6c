from django.urls import path

from . import views

app_name = "billing"

urlpatterns = [
    path("finance/", views.finance, name="finance"),
    path("finance/close", views.close, name="close"),
    path("finance/periods/<int:period_id>/progress", views.period_progress, name="period_progress"),
    path("finance/export", views.exports_download, name="export"),
    path("finance/payments/", views.payments_page, name="payments"),
    path("finance/subsidies/", views.subsidy_report, name="subsidies"),
    path("mine/", views.mine, name="mine"),
    path("access-requests/<int:authorization_id>/decide", views.decide_access, name="decide_access"),
    path("accounts/<int:account_id>/", views.account_statement, name="account"),
    path("invoices/<int:invoice_id>/", views.invoice_detail, name="invoice"),
    path("invoices/<int:invoice_id>/pdf", views.invoice_pdf, name="invoice_pdf"),
    path("invoices/<int:invoice_id>/credit-note", views.credit_note, name="credit_note"),
    path("invoices/<int:invoice_id>/transfer", views.record_transfer, name="transfer"),
    path("invoices/<int:invoice_id>/pay", views.pay, name="pay"),
    path("charges/<int:charge_id>/waive", views.waive, name="waive"),
    path("vouchers/", views.vouchers, name="vouchers"),
    path("vouchers/<int:voucher_id>/", views.voucher_detail, name="voucher"),
]
