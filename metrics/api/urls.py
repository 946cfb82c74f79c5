from django.urls import path

from metrics.api import views as v

P = "projects/<id:project_id>/metrics/"

urlpatterns = [
    path(P, v.MetricsSummary.as_view(), name="metrics-summary"),
    path(P + "daily/", v.MetricsDaily.as_view(), name="metrics-daily"),
    path(P + "agents/", v.MetricsAgents.as_view(), name="metrics-agents"),
    path(P + "forecast/", v.MetricsForecast.as_view(), name="metrics-forecast"),
    path(P + "alerts/", v.MetricsAlerts.as_view(), name="metrics-alerts"),
]
