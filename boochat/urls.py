from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import path

from boochat import views
from settings_app import views as settings_views

urlpatterns = [
    path("", views.home, name="home"),
    path("models/", views.picker, name="picker"),
    path("settings/", settings_views.settings_page, name="settings"),
    path("favorites/toggle", settings_views.favorite_toggle, name="favorite_toggle"),
    path("favorites/remove", settings_views.favorite_remove, name="favorite_remove"),
    path("api/models", views.api_models, name="api_models"),
    path("api/settings", settings_views.api_settings, name="api_settings"),
    path("healthz", views.healthz, name="healthz"),
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("admin/", admin.site.urls),
]
