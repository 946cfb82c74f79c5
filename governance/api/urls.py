from django.urls import path

from governance.api import views as v

urlpatterns = [
    path("me/", v.WhoAmI.as_view(), name="whoami"),
    path("api-keys/", v.ApiKeyListCreate.as_view(), name="api-key-list"),
    path("api-keys/<id:pk>/revoke/", v.ApiKeyRevoke.as_view(), name="api-key-revoke"),
]
