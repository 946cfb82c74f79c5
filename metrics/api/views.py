"""The metrics API: any key that can see the project may read its figures (a key scoped to
another project gets 404). Each view checks its query, calls one selector, renders it."""

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.response import Response
from rest_framework.views import APIView

from metrics import selectors
from metrics.api import serializers as ms
from tascade.api import error_responses

_WINDOW = [
    OpenApiParameter("from", OpenApiTypes.DATE, description="First UTC day (inclusive)."),
    OpenApiParameter(
        "to", OpenApiTypes.DATE, description="Last UTC day (inclusive), default today."
    ),
]


def _window(request) -> dict:
    serializer = ms.WindowQuerySerializer(data=request.query_params)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data


@extend_schema(
    tags=["metrics"], parameters=_WINDOW, responses={200: ms.Summary, **error_responses()}
)
class MetricsSummary(APIView):
    def get(self, request, project_id):
        return Response(selectors.project_summary(request.user, project_id, **_window(request)))


@extend_schema(tags=["metrics"], parameters=_WINDOW, responses={200: ms.Daily, **error_responses()})
class MetricsDaily(APIView):
    def get(self, request, project_id):
        return Response(selectors.daily_series(request.user, project_id, **_window(request)))


@extend_schema(
    tags=["metrics"], parameters=_WINDOW, responses={200: ms.Agents, **error_responses()}
)
class MetricsAgents(APIView):
    def get(self, request, project_id):
        return Response(selectors.agent_figures(request.user, project_id, **_window(request)))


@extend_schema(tags=["metrics"], responses={200: ms.Forecast, **error_responses()})
class MetricsForecast(APIView):
    def get(self, request, project_id):
        return Response(selectors.milestone_forecasts(request.user, project_id))


@extend_schema(
    tags=["metrics"],
    parameters=[ms.AlertQuerySerializer],
    responses={200: ms.Alerts, **error_responses()},
)
class MetricsAlerts(APIView):
    def get(self, request, project_id):
        query = ms.AlertQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        return Response(
            selectors.alerts_recent(request.user, project_id, limit=query.validated_data["limit"])
        )
