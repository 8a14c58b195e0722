from django.contrib import admin

from platform_core.models import RateLimit


@admin.register(RateLimit)
class RateLimitAdmin(admin.ModelAdmin):
    list_display = ("name", "rate")
