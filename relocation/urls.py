from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("", include("accounts.urls")),
    path("cases/", include("cases.urls")),
    path("offers/", include("offers.urls")),
    path("reports/", include("reports.urls")),
    path("admin/", admin.site.urls),
]
