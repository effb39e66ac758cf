from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import path

from boochat import views
from boochat.arena import views as arena_views
from boochat.chat import library_views
from boochat.chat import views as chat_views
from boochat.gateway import views as gateway_views
from settings_app import views as settings_views

urlpatterns = [
    path("", views.home, name="home"),
    path("models/", views.picker, name="picker"),
    path("models/hosts/<slug:slug>/", views.host_models, name="host_models"),
    path("chat/", library_views.chat_index, name="chat_index"),
    path("chat/new", library_views.chat_new, name="chat_new"),
    path("chat/search", library_views.chat_search, name="chat_search"),
    path("chat/<int:pk>/", chat_views.chat_session, name="chat_session"),
    path("chat/<int:pk>/model", chat_views.chat_set_model, name="chat_set_model"),
    path("chat/<int:pk>/send", chat_views.chat_send, name="chat_send"),
    path("chat/<int:pk>/title", chat_views.chat_title, name="chat_title"),
    path("chat/<int:pk>/rename", library_views.chat_rename, name="chat_rename"),
    path("chat/<int:pk>/pin", library_views.chat_pin, name="chat_pin"),
    path("chat/<int:pk>/settings", chat_views.chat_settings, name="chat_settings"),
    path("chat/<int:pk>/delete", library_views.chat_delete, name="chat_delete"),
    path("chat/<int:pk>.md", library_views.chat_export, {"extension": "md"}, name="chat_export_md"),
    path("chat/<int:pk>.json", library_views.chat_export, {"extension": "json"}, name="chat_export_json"),
    path("chat/export.json", library_views.chat_export_all, name="chat_export_all"),
    path("chat/import", library_views.chat_import, name="chat_import"),
    path("chat/presets/", library_views.presets, name="presets"),
    path("chat/<int:pk>/branch", chat_views.chat_branch, name="chat_branch"),
    path("chat/messages/<int:pk>", chat_views.chat_message, name="chat_message"),
    path("chat/messages/<int:pk>/edit", chat_views.chat_edit, name="chat_edit"),
    path("chat/messages/<int:pk>/regenerate", chat_views.chat_regenerate, name="chat_regenerate"),
    path("chat/messages/<int:pk>/delete", chat_views.chat_delete_turn, name="chat_delete_turn"),
    path("chat/attachments/<int:pk>", chat_views.chat_attachment, name="chat_attachment"),
    path("arena/", arena_views.arena_index, name="arena_index"),
    path("arena/new", arena_views.arena_new, name="arena_new"),
    path("arena/<int:pk>/", arena_views.arena_run, name="arena_run"),
    path("arena/<int:pk>/analyze", arena_views.arena_analyze, name="arena_analyze"),
    path("arena/<int:pk>.json", arena_views.arena_export, name="arena_export"),
    path("arena/answers/<int:pk>", arena_views.arena_answer, name="arena_answer"),
    path("arena/answers/<int:pk>/stream", arena_views.arena_answer_stream, name="arena_answer_stream"),
    path("arena/answers/<int:pk>/continue", arena_views.arena_continue, name="arena_continue"),
    path("settings/", settings_views.settings_page, name="settings"),
    path("favorites/toggle", settings_views.favorite_toggle, name="favorite_toggle"),
    path("favorites/remove", settings_views.favorite_remove, name="favorite_remove"),
    path("api/models", views.api_models, name="api_models"),
    path("api/settings", settings_views.api_settings, name="api_settings"),
    path("healthz", views.healthz, name="healthz"),
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("admin/", admin.site.urls),
    # The OpenAI-compatible gateway. boochat.asgi serves /v1/ with the same code before Django sees it.
    path("v1/models", gateway_views.v1, name="gateway_models"),
    path("v1/models/<path:model_id>", gateway_views.v1, name="gateway_model"),
    path("v1/chat/completions", gateway_views.v1, name="gateway_chat_completions"),
    path("v1/completions", gateway_views.v1, name="gateway_completions"),
    path("v1/embeddings", gateway_views.v1, name="gateway_embeddings"),
    path("v1/<path:rest>", gateway_views.v1),  # anything else: the gateway's own 404
]

handler400 = views.bad_request
handler500 = views.server_error
