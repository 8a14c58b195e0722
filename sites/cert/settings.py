"""Settings of the cert site."""

from sites.base.settings import *

SITE_NAME = "cert"
ROOT_URLCONF = "sites.cert.urls"
WSGI_APPLICATION = "sites.cert.wsgi.application"
