"""URLs every site serves: the admin (periodic jobs live there) and a health check."""

from django.contrib import admin
from django.urls import path

from platform_core.views import health

urlpatterns = [
    path("admin/", admin.site.urls),
    path("health", health, name="health"),
]
