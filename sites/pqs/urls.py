"""URLs of the pqs site."""

from sites.base.urls import urlpatterns as base_urlpatterns

urlpatterns = [*base_urlpatterns]
