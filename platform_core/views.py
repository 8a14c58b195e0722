from django.conf import settings
from django.http import JsonResponse


def health(request):
    return JsonResponse({"site": settings.SITE_NAME, "use_celery": settings.USE_CELERY})
