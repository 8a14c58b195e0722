"""WSGI entry of the cert site."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "sites.cert.settings")
application = get_wsgi_application()
