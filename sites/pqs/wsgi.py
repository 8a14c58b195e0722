"""WSGI entry of the pqs site."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "sites.pqs.settings")
application = get_wsgi_application()
