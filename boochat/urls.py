from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import path

from boochat import views
from boochat.account import views as account_views
from boochat.arena import views as arena_views
from boochat.chat import library_views, new_chat_views, organize_views, share_views
from boochat.chat import views as chat_views
from boochat.gateway import views as gateway_views
from settings_app import views as settings_views

urlpatterns = [
    path("", views.home, name="home"),
    path("models/", views.picker, name="picker"),
    path("models/hosts/<slug:slug>/", views.host_models, name="host_models"),
    path("chat/", library_views.chat_index, name="chat_index"),
    path("chat/new", chat_views.chat_new, name="chat_new"),
    path("chat/start", new_chat_views.chat_start, name="chat_start"),
    path("chat/search", library_views.chat_search, name="chat_search"),
    path("chat/<int:pk>/", chat_views.chat_session, name="chat_session"),
    path("chat/<int:pk>/model", chat_views.chat_set_model, name="chat_set_model"),
    path("chat/<int:pk>/send", chat_views.chat_send, name="chat_send"),
    path("chat/<int:pk>/stop", chat_views.chat_stop, name="chat_stop"),
    path("chat/<int:pk>/title", chat_views.chat_title, name="chat_title"),
    path("chat/<int:pk>/rename", library_views.chat_rename, name="chat_rename"),
    path("chat/<int:pk>/pin", library_views.chat_pin, name="chat_pin"),
    path("chat/<int:pk>/settings", chat_views.chat_settings, name="chat_settings"),
    path("chat/<int:pk>/delete", library_views.chat_delete, name="chat_delete"),
    path("chat/<int:pk>/archive", organize_views.chat_archive, name="chat_archive"),
    path("chat/<int:pk>/share", share_views.chat_share, name="chat_share"),
    path("chat/shares/<int:pk>/revoke", share_views.share_revoke, name="share_revoke"),
    path("chat/archived", organize_views.chat_archived, name="chat_archived"),
    path("chat/trash", organize_views.chat_trash, name="chat_trash"),
    path("chat/restore", organize_views.chat_restore, name="chat_restore"),
    path("chat/bulk", organize_views.chat_bulk, name="chat_bulk"),
    path("chat/folders", organize_views.folder_create, name="folder_create"),
    path("chat/folders/<int:pk>/rename", organize_views.folder_rename, name="folder_rename"),
    path("chat/folders/<int:pk>/delete", organize_views.folder_delete, name="folder_delete"),
    path("s/<str:token>", share_views.shared_chat, name="shared_chat"),
    path("chat/<int:pk>.md", library_views.chat_export, {"extension": "md"}, name="chat_export_md"),
    path("chat/<int:pk>.json", library_views.chat_export, {"extension": "json"}, name="chat_export_json"),
    path("chat/export.json", library_views.chat_export_all, name="chat_export_all"),
    path("chat/import", library_views.chat_import, name="chat_import"),
    path("chat/presets/", library_views.presets, name="presets"),
    path("chat/<int:pk>/branch", chat_views.chat_branch, name="chat_branch"),
    path("chat/messages/<int:pk>", chat_views.chat_message, name="chat_message"),
    path("chat/messages/<int:pk>/stream", chat_views.chat_answer_stream, name="chat_answer_stream"),
    path("chat/messages/<int:pk>/edit", chat_views.chat_edit, name="chat_edit"),
    path("chat/messages/<int:pk>/regenerate", chat_views.chat_regenerate, name="chat_regenerate"),
    path("chat/messages/<int:pk>/continue", chat_views.chat_continue, name="chat_continue"),
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
    path("settings/keys/", account_views.keys, name="keys"),
    path("settings/keys/<int:pk>/revoke", account_views.key_revoke, name="key_revoke"),
    path("settings/connect/", account_views.connect, name="connect"),
    path("settings/usage/", account_views.usage, name="usage"),
    path("settings/usage/all/", account_views.usage_all, name="usage_all"),
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
    path("v1/responses", gateway_views.v1, name="gateway_responses"),
    path("v1/messages", gateway_views.v1, name="gateway_messages"),
    path("v1/messages/count_tokens", gateway_views.v1, name="gateway_count_tokens"),
    path("v1/<path:rest>", gateway_views.v1),  # anything else: the gateway's own 404
]

handler400 = views.bad_request
handler500 = views.server_error
