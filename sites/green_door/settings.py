"""Settings of the green_door site."""

from sites.base.settings import *

SITE_NAME = "green_door"
ROOT_URLCONF = "sites.green_door.urls"
WSGI_APPLICATION = "sites.green_door.wsgi.application"
