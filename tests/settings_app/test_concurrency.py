"""Two tabs of one user starring models at once lose none (on SQLite and, in CI, PostgreSQL)."""

import json
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.db import connections
from django.test import Client

from settings_app.models import Favorite
from tests.factories import make_provider


@pytest.mark.django_db(transaction=True)
def test_concurrent_toggles_and_patches_from_two_clients_lose_none(django_user_model):
    make_provider(slug="sam-desktop", base_url="http://127.0.0.1:9", is_default=True)
    user = django_user_model.objects.create_user("tabs")
    tabs = [Client(), Client()]
    for tab in tabs:
        tab.force_login(user)

    def star(job):
        tab_index, n = job
        tab = tabs[tab_index]
        model_id = f"sam-desktop/model-{tab_index}-{n}"
        try:
            if n % 2:
                response = tab.post("/favorites/toggle", {"model_id": model_id}, headers={"HX-Request": "true"})
            else:
                response = tab.patch("/api/settings", json.dumps({"favorite_models_add": [model_id]}),
                                     content_type="application/json")
            return response.status_code
        finally:
            connections.close_all()

    jobs = [(tab, n) for n in range(50) for tab in (0, 1)]
    with ThreadPoolExecutor(max_workers=16) as pool:
        statuses = list(pool.map(star, jobs))

    assert statuses == [200] * 100
    stored = set(Favorite.objects.ids_for(user))
    assert stored == {f"sam-desktop/model-{tab}-{n}" for tab, n in jobs}
