"""Settings of the api site."""

from sites.base.settings import *

SITE_NAME = "api"
ROOT_URLCONF = "sites.api.urls"
WSGI_APPLICATION = "sites.api.wsgi.application"
