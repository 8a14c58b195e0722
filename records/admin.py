from django.contrib import admin

from records.models import ApiKey, Certificate, Partner, Report, Submission

for model in (ApiKey, Certificate, Partner, Report, Submission):
    admin.site.register(model)
