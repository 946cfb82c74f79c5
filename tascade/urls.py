from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path, register_converter
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from tascade import views
from tascade.converters import IdConverter

# ``<id:…>``: a database id in any URL; one that is too long is a 404, never a 500.
register_converter(IdConverter, "id")

urlpatterns = [
    path("admin/", admin.site.urls),
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("review/", include("governance.urls")),
    path("plan/", include("orchestration.urls")),
    path("ops/", views.health, name="ops-health"),
    path("api/v1/", include("orchestration.api.urls")),
    path("api/v1/", include("governance.api.urls")),
    path("api/v1/", include("metrics.api.urls")),
    path("metrics/", include("metrics.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="api-docs"),
    path("", include("tascade.dashboard_urls")),
]

handler400 = "tascade.api.bad_request"
handler403 = "tascade.api.forbidden"
handler404 = "tascade.api.not_found"
handler500 = "tascade.api.server_error"
