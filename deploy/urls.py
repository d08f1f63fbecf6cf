"""The operators' endpoints on the portal: /healthz for uptime monitors."""

from django.urls import path

from deploy import views

urlpatterns = [path("healthz", views.healthz, name="healthz")]
