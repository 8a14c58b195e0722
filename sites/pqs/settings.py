"""Settings of the pqs site."""

from sites.base.settings import *

SITE_NAME = "pqs"
ROOT_URLCONF = "sites.pqs.urls"
WSGI_APPLICATION = "sites.pqs.wsgi.application"
