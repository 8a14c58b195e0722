"""WSGI entry of the green_door site."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "sites.green_door.settings")
application = get_wsgi_application()
