from django.urls import path

from . import views

app_name = "oversight"

urlpatterns = [
    path("", views.dashboard, name="dashboard"),
    path("refresh", views.refresh_now, name="refresh"),
    path("freshness", views.freshness, name="freshness"),
    path("charts/<slug:key>.csv", views.chart_csv, name="chart_csv"),
    path("statistics/", views.statistics, name="statistics"),
    path("statistics.csv", views.statistics_csv, name="statistics_csv"),
    path("evaluation/", views.evaluation_page, name="evaluation"),
    path("evaluation.xlsx", views.evaluation_xlsx, name="evaluation_xlsx"),
    path("purchase-check/", views.purchase_check, name="purchase_check"),
    path("exports/", views.exports_page, name="exports"),
    path("exports/run", views.run_export, name="run_export"),
    path("exports/<int:export_id>.json", views.export_download, name="export_download"),
]
