"""A pool's requests go where their prompt's prefix is cached and where a slot is free, and wait in a
fair line when every member is full: through the gateway, against fake llama-servers with slots and
a prompt cache (tests.fakes.slots)."""

import contextlib
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import anthropic
import httpx
import openai
import pytest
from django.core.cache import cache

from boochat.gateway.keys import create_key
from providers import slots
from providers.catalog import load_catalog
from providers.models import ModelOverride, PoolStrategy, Provider, ProviderKind
from tests.factories import make_provider
from tests.fakes.llama_server import FakeLlamaServer
from tests.fakes.llama_swap import FakeModel
from tests.fakes.slots import Slots

pytestmark = pytest.mark.django_db(transaction=True)

SYSTEM = "You are a careful coding agent. " * 40  # ~1,300 characters every session shares


def until(condition, timeout=10.0, message="condition"):
    """Poll `condition` until it holds, for at most `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.01)
    pytest.fail(f"{message} did not happen within {timeout} s")


def make_fleet(count, *, slots_each=2, decode=0.0, prefill=0.0, reply=None, strategy=PoolStrategy.CACHE,
               override=None):
    """`count` fake llama-servers with `slots_each` slots, and a pool `fleet/qwen3-8b` over them;
    `override`: the members' slots as the provider file would set them (else learned from /props)."""
    hosts = []
    for index in range(count):
        host = FakeLlamaServer(FakeModel("qwen3-8b", n_ctx=65536), reply=reply or ["Sure", ", ", "done", "."])
        host.slots = Slots(slots_each, prefill_seconds=prefill, decode_seconds=decode, cache_tokens=100_000)
        host.start()
        hosts.append(host)
        provider = make_provider(slug=f"box{index}", kind=ProviderKind.LLAMA_SERVER, base_url=host.url)
        if override:
            ModelOverride.objects.create(provider=provider, model="qwen3-8b", slots=override)
    pool = Provider.objects.create(slug="fleet", name="Fleet", kind=ProviderKind.POOL, strategy=strategy)
    ModelOverride.objects.create(provider=pool, model="qwen3-8b", members=[f"box{i}/qwen3-8b" for i in range(count)])
    cache.clear()
    load_catalog()
    return hosts


@pytest.fixture
def fleet_of():
    started = []

    def build(count, **options):
        hosts = make_fleet(count, **options)
        started.extend(hosts)
        return hosts

    build.started = started
    yield build
    for host in started:
        host.stop()


@pytest.fixture
def key():
    return create_key(name="agent")[1]


def chat(client, messages, **extra):
    """One turn through the gateway with the openai SDK: (member that served it, cached tokens, text)."""
    raw = client.chat.completions.with_raw_response.create(model="fleet/qwen3-8b", messages=messages, **extra)
    answer = raw.parse()
    return (raw.headers["X-BooChat-Served-By"], answer.usage.prompt_tokens_details.cached_tokens,
            answer.choices[0].message.content)


def served_by(host_index):
    return f"box{host_index}/qwen3-8b"


def member_counts(count):
    return slots.in_flight([served_by(i) for i in range(count)])


# -- prefix affinity and spreading --------------------------------------------------------------------


def test_agent_sessions_spread_over_the_members_and_each_turn_returns_to_its_cached_member(
        fleet_of, asgi_server, key, settings):
    hosts = fleet_of(4, decode=0.05)
    sessions = [[{"role": "system", "content": SYSTEM}, {"role": "user", "content": f"Task {n}: fix bug {n * 7}."}]
                for n in range(8)]
    with openai.OpenAI(base_url=f"{asgi_server.url}/v1", api_key=key, max_retries=0, timeout=20) as client:
        with ThreadPoolExecutor(8) as pool:  # 8 new sessions at once on 4 members × 2 slots
            first = list(pool.map(lambda messages: chat(client, messages), sessions))
        assert sorted(h.slots.most_active for h in hosts) == [2, 2, 2, 2]  # spread: nobody waited in a host
        for messages, (_, _, text) in zip(sessions, first, strict=True):
            messages += [{"role": "assistant", "content": text}, {"role": "user", "content": "Now run the tests."}]
        later = [chat(client, messages) for messages in sessions]
    for (member, _, _), (again, cached, _) in zip(first, later, strict=True):
        assert again == member  # back where its conversation is cached
        # The host reused all but the new question and its template tokens.
        assert cached >= (len(SYSTEM) + 30) * 2 // 3
    assert member_counts(4) == dict.fromkeys(map(served_by, range(4)), 0)


def test_new_sessions_sharing_a_system_prompt_cached_on_several_members_go_to_the_freest(fleet_of, gateway, key,
                                                                                         settings):
    settings.BOOCHAT_PREFILL_TOKENS_PER_SECOND = 10_000_000  # the system prompt's prefill is worth no wait
    hosts = fleet_of(2, slots_each=2, decode=0.01, reply=["word "] * 1000, override=2)  # 10 s answers
    headers = {"Authorization": f"Bearer {key}"}

    def session(n, *, stream=True):
        body = {"model": "fleet/qwen3-8b", "stream": stream,
                "messages": [{"role": "system", "content": SYSTEM}, {"role": "user", "content": f"Task {n}."}]}
        if stream:
            return gateway.send(gateway.build_request("POST", "/v1/chat/completions", headers=headers, json=body),
                                stream=True)
        return gateway.post("/v1/chat/completions", headers=headers, json=body)

    held = [session(1), session(2)]  # the first as the freest, the second for its cached system prompt
    try:
        assert [h.headers["X-BooChat-Served-By"] for h in held] == [served_by(0)] * 2
        for host in hosts:
            host.reply = ["short"]
        assert session(3, stream=False).headers["X-BooChat-Served-By"] == served_by(1)  # box0 is full
        for h in held:
            h.close()
        until(lambda: member_counts(2) == {served_by(0): 0, served_by(1): 0}, message="both members free")
        for host in hosts:
            host.reply = ["word "] * 1000
        held += [session(4), session(5)]  # both members hold the system prompt now
        assert [h.headers["X-BooChat-Served-By"] for h in held[2:]] == [served_by(0), served_by(1)]
    finally:
        for h in held:
            h.close()


def test_a_client_session_id_keeps_its_member_when_the_prompt_changes_at_the_start(fleet_of, gateway, key):
    fleet_of(3, slots_each=1, decode=0.01, reply=["word "] * 1000, override=1)
    headers = {"Authorization": f"Bearer {key}"}
    members = []
    with httpx.Client(base_url=gateway.base_url, timeout=30) as client:
        held = hold(client, headers)  # box0, first in the pool's order, is busy for the session's first turn
        for host in fleet_of.started:
            host.reply = ["short"]
        for turn in range(3):
            # A prompt that starts with something new each time (a date in the system prompt): no prefix in common.
            body = {"model": "fleet/qwen3-8b", "messages": [
                {"role": "system", "content": f"Turn {turn} at 12:0{turn}"}, {"role": "user", "content": "hi"}]}
            response = client.post("/v1/chat/completions", json=body,
                                   headers={**headers, "X-Session-Id": "agent-run-17"})
            assert response.status_code == 200
            members.append(response.headers["X-BooChat-Served-By"])
            held.close()  # box0 is free from the second turn on
    assert members == [served_by(1)] * 3  # the session's member, though box0 comes first and has room


def _chat_turn(base_url, key, turn, session):
    with openai.OpenAI(base_url=f"{base_url}/v1", api_key=key, max_retries=0, timeout=30) as client:
        raw = client.chat.completions.with_raw_response.create(
            model="fleet/qwen3-8b", **session,
            messages=[{"role": "system", "content": f"Turn {turn} at 12:0{turn}"}, {"role": "user", "content": "hi"}])
    return raw.headers["X-BooChat-Served-By"]


def _responses_turn(base_url, key, turn, session):
    with openai.OpenAI(base_url=f"{base_url}/v1", api_key=key, max_retries=0, timeout=30) as client:
        raw = client.responses.with_raw_response.create(model="fleet/qwen3-8b", instructions=f"Turn {turn} at 12:0{turn}",
                                                        input="hi", **session)
    return raw.headers["X-BooChat-Served-By"]


def _messages_turn(base_url, key, turn, session):
    with anthropic.Anthropic(base_url=base_url, api_key=key, max_retries=0, timeout=30) as client:
        raw = client.messages.with_raw_response.create(model="fleet/qwen3-8b", max_tokens=50, system=f"Turn {turn} at 12:0{turn}",
                                                       messages=[{"role": "user", "content": "hi"}], **session)
    return raw.headers["X-BooChat-Served-By"]


@pytest.mark.parametrize("turn_of, session", [
    (_chat_turn, {"prompt_cache_key": "agent-run-17"}),
    (_chat_turn, {"user": "agent-run-17"}),
    (_responses_turn, {"extra_headers": {"X-Session-Id": "agent-run-17"}}),
    (_responses_turn, {"user": "agent-run-17"}),
    (_responses_turn, {"prompt_cache_key": "agent-run-17"}),
    (_messages_turn, {"extra_headers": {"X-Session-Id": "agent-run-17"}}),
    (_messages_turn, {"metadata": {"user_id": "agent-run-17"}}),
], ids=["chat-prompt_cache_key", "chat-user", "responses-header", "responses-user", "responses-prompt_cache_key",
        "messages-header", "messages-metadata.user_id"])
def test_every_agent_api_keeps_a_client_session_on_its_member(fleet_of, asgi_server, gateway, key, turn_of, session):
    fleet_of(3, slots_each=1, decode=0.01, reply=["word "] * 1000, override=1)
    held = hold(gateway, {"Authorization": f"Bearer {key}"})  # box0, first in the pool's order, is busy for turn 0
    members = []
    try:
        for host in fleet_of.started:
            host.reply = ["short"]
        for turn in range(3):  # each turn's prompt starts with something new: no prefix in common
            members.append(turn_of(asgi_server.url, key, turn, session))
            held.close()  # box0 is free from the second turn on
    finally:
        held.close()
    assert members == [served_by(1)] * 3  # the session's member, though box0 comes first and has room


def test_a_new_prompt_never_waits_behind_a_busy_member_while_another_has_room(fleet_of, gateway, key):
    hosts = fleet_of(2, slots_each=1, decode=0.1, reply=["word "] * 20, override=1)
    headers = {"Authorization": f"Bearer {key}"}
    with httpx.Client(base_url=gateway.base_url, timeout=20) as client:
        holder = client.build_request("POST", "/v1/chat/completions", headers=headers, json={
            "model": "fleet/qwen3-8b", "stream": True, "messages": [{"role": "user", "content": "a long answer"}]})
        held = client.send(holder, stream=True)  # box0's only slot is taken
        try:
            assert held.headers["X-BooChat-Served-By"] == served_by(0)
            response = client.post("/v1/chat/completions", headers=headers, json={
                "model": "fleet/qwen3-8b", "messages": [{"role": "user", "content": "something else"}]})
            assert response.status_code == 200 and response.headers["X-BooChat-Served-By"] == served_by(1)
            assert held.is_stream_consumed is False  # box0 is still answering the first
        finally:
            held.close()
    assert hosts[0].slots.most_active == 1 and hosts[1].slots.most_active == 1


@pytest.mark.parametrize("prefill_rate, expected", [(1, "box0"), (10_000_000, "box1")])
def test_a_full_cached_member_is_waited_for_only_when_the_prefill_saved_outweighs_the_wait(
        fleet_of, gateway, key, settings, prefill_rate, expected, caplog):
    settings.BOOCHAT_PREFILL_TOKENS_PER_SECOND = prefill_rate
    hosts = fleet_of(2, slots_each=1, decode=0.03, reply=["word "] * 10, override=1)
    headers = {"Authorization": f"Bearer {key}"}
    conversation = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": "first"}]
    first = gateway.post("/v1/chat/completions", headers=headers, json={"model": "fleet/qwen3-8b", "messages": conversation})
    assert first.headers["X-BooChat-Served-By"] == served_by(0)
    conversation += [{"role": "assistant", "content": first.json()["choices"][0]["message"]["content"]},
                     {"role": "user", "content": "second"}]
    with httpx.Client(base_url=gateway.base_url, timeout=20) as client:
        held = client.send(client.build_request("POST", "/v1/chat/completions", headers=headers, json={
            "model": "fleet/qwen3-8b", "stream": True, "messages": [{"role": "user", "content": "other work"}]}),
            stream=True)
        try:
            assert held.headers["X-BooChat-Served-By"] == served_by(0)  # no prefix: the first with room
            with ThreadPoolExecutor(1) as pool:
                turn = pool.submit(client.post, "/v1/chat/completions", headers=headers,
                                   json={"model": "fleet/qwen3-8b", "messages": conversation})
                if expected == "box0":  # it waits in line for box0 rather than prefill everything on box1
                    until(lambda: slots.waiting("fleet/qwen3-8b") == 1, message="the turn waiting for box0")
                    assert hosts[1].requests_to("/v1/chat/completions") == []
                    held.read()
                response = turn.result(20)
        finally:
            held.close()
    assert response.status_code == 200 and response.headers["X-BooChat-Served-By"] == f"{expected}/qwen3-8b"
    cached = response.json()["usage"]["prompt_tokens_details"]["cached_tokens"]
    assert (cached > len(SYSTEM) // 2) == (expected == "box0")


def test_a_full_member_whose_host_dropped_its_conversations_is_not_waited_for(fleet_of, gateway, key, settings):
    settings.BOOCHAT_PREFILL_TOKENS_PER_SECOND = 1  # on BooChat's belief alone, any cached prefix is worth a wait
    hosts = fleet_of(2, slots_each=1, decode=0.01, reply=["word "] * 5, override=1)
    for host in hosts:
        host.slots.cache_tokens = 0  # --cache-ram 0: a prompt that leaves the slot is gone
    headers = {"Authorization": f"Bearer {key}"}
    conversation = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": "first"}]

    def turn(question):
        answer = gateway.post("/v1/chat/completions", headers=headers,
                              json={"model": "fleet/qwen3-8b", "messages": conversation})
        conversation.extend([{"role": "assistant", "content": answer.json()["choices"][0]["message"]["content"]},
                             {"role": "user", "content": question}])
        return answer

    assert turn("second").headers["X-BooChat-Served-By"] == served_by(0)
    gateway.post("/v1/chat/completions", headers=headers, json={  # takes box0's slot: the conversation is dropped
        "model": "fleet/qwen3-8b", "messages": [{"role": "user", "content": "unrelated"}]})
    again = turn("third")
    assert again.headers["X-BooChat-Served-By"] == served_by(0)  # where BooChat thought it was cached
    assert again.json()["usage"]["prompt_tokens_details"]["cached_tokens"] < 10  # the host says otherwise
    for host in hosts:
        host.reply = ["word "] * 1000
    held = hold(gateway, headers, "other work")  # box0 is full for 10 s
    try:
        assert held.headers["X-BooChat-Served-By"] == served_by(0)
        for host in hosts:
            host.reply = ["short"]
        with ThreadPoolExecutor(1) as pool:
            answer = pool.submit(gateway.post, "/v1/chat/completions", headers=headers,
                                 json={"model": "fleet/qwen3-8b", "messages": conversation})
            until(answer.done, timeout=5, message="the turn answered while box0 is busy")
        assert answer.result().headers["X-BooChat-Served-By"] == served_by(1)
    finally:
        held.close()


# -- the line -----------------------------------------------------------------------------------------


def hold(client, headers, content="hold"):
    return client.send(client.build_request("POST", "/v1/chat/completions", headers=headers, json={
        "model": "fleet/qwen3-8b", "stream": True, "messages": [{"role": "user", "content": content}]}), stream=True)


def test_requests_wait_in_line_first_in_first_out(fleet_of, gateway, key):
    hosts = fleet_of(1, slots_each=1, decode=0.01, reply=["word "] * 1000, override=1)  # 10 s answers
    headers = {"Authorization": f"Bearer {key}"}
    with httpx.Client(base_url=gateway.base_url, timeout=30) as client, ThreadPoolExecutor(4) as pool:
        holder = hold(client, headers)  # the only slot is taken
        hosts[0].reply = ["short"]  # the answers after it are quick
        waiting = []
        for n in range(4):
            waiting.append(pool.submit(client.post, "/v1/chat/completions", headers=headers, json={
                "model": "fleet/qwen3-8b", "messages": [{"role": "user", "content": f"queued {n}"}]}))
            until(lambda n=n: slots.waiting("fleet/qwen3-8b") == n + 1, message=f"request {n} in line")
        holder.close()  # its client leaves: the slot is free
        answers = [future.result(60) for future in waiting]
    assert [a.status_code for a in answers] == [200] * 4
    assert [r.json()["messages"][0]["content"] for r in hosts[0].requests_to("/v1/chat/completions")] == [
        "hold", "queued 0", "queued 1", "queued 2", "queued 3"]
    assert hosts[0].slots.most_active == 1  # never piled on the host
    assert slots.waiting("fleet/qwen3-8b") == 0 and member_counts(1) == {served_by(0): 0}


def test_a_waiting_request_takes_the_first_member_that_frees_a_slot(fleet_of, gateway, key):
    hosts = fleet_of(2, slots_each=1, decode=0.01, reply=["word "] * 1000, override=1)  # 10 s answers
    headers = {"Authorization": f"Bearer {key}"}
    with httpx.Client(base_url=gateway.base_url, timeout=30) as client, ThreadPoolExecutor(1) as pool:
        first, second = hold(client, headers, "hold 0"), hold(client, headers, "hold 1")
        assert [first.headers["X-BooChat-Served-By"], second.headers["X-BooChat-Served-By"]] == [
            served_by(0), served_by(1)]
        for host in hosts:
            host.reply = ["short"]
        waiter = pool.submit(client.post, "/v1/chat/completions", headers=headers, json={
            "model": "fleet/qwen3-8b", "messages": [{"role": "user", "content": "queued"}]})
        until(lambda: slots.waiting("fleet/qwen3-8b") == 1, message="the request in line")
        second.close()  # box1 frees first, though box0 comes first in the pool's order
        answer = waiter.result(30)
        assert answer.headers["X-BooChat-Served-By"] == served_by(1)
        assert not first.is_closed  # box0 still answering
        first.close()
    assert max(h.slots.most_active for h in hosts) == 1


def test_a_full_line_and_a_long_wait_are_refused_with_retry_after(fleet_of, gateway, key, settings):
    settings.BOOCHAT_QUEUE_MAX, settings.BOOCHAT_QUEUE_TIMEOUT = 1, 0.5
    fleet_of(1, slots_each=1, decode=0.2, reply=["word "] * 20, override=1)
    headers = {"Authorization": f"Bearer {key}"}
    body = {"model": "fleet/qwen3-8b", "messages": [{"role": "user", "content": "hi"}]}
    with httpx.Client(base_url=gateway.base_url, timeout=30) as client, ThreadPoolExecutor(1) as pool:
        held = hold(client, headers)
        try:
            waiter = pool.submit(client.post, "/v1/chat/completions", headers=headers, json=body)
            until(lambda: slots.waiting("fleet/qwen3-8b") == 1, message="one request in line")
            full = client.post("/v1/chat/completions", headers=headers, json=body)  # the line holds one
            timed_out = waiter.result(30)
        finally:
            held.close()
    assert full.status_code == 503 and full.headers["Retry-After"]
    assert full.json()["error"]["code"] == "pool_busy" and "BOOCHAT_QUEUE_MAX" in full.json()["error"]["message"]
    assert timed_out.status_code == 503 and timed_out.headers["Retry-After"]
    assert "BOOCHAT_QUEUE_TIMEOUT" in timed_out.json()["error"]["message"]
    until(lambda: member_counts(1) == {served_by(0): 0}, message="the held stream's count released")
    assert slots.waiting("fleet/qwen3-8b") == 0


# -- counts that never leak ---------------------------------------------------------------------------


def test_counts_are_released_when_clients_are_killed_streaming_or_waiting(fleet_of, asgi_server, key):
    fleet_of(1, slots_each=1, decode=0.1, reply=["word "] * 50, override=1)
    headers = {"Authorization": f"Bearer {key}"}
    body = {"model": "fleet/qwen3-8b", "stream": True, "messages": [{"role": "user", "content": "hi"}]}
    streaming = httpx.Client(base_url=asgi_server.url, timeout=20)
    held = streaming.send(streaming.build_request("POST", "/v1/chat/completions", headers=headers, json=body), stream=True)
    chunks = held.iter_raw()  # kept: a dropped iterator closes the response
    next(chunks)  # the answer has begun
    assert member_counts(1) == {served_by(0): 1}

    def waits_then_dies():
        with httpx.Client(base_url=asgi_server.url, timeout=0.5) as client:
            try:
                client.post("/v1/chat/completions", headers=headers, json=body)
            except httpx.TimeoutException:
                pass  # the client gives up and closes its connection while in line

    waiter = threading.Thread(target=waits_then_dies)
    waiter.start()
    until(lambda: slots.waiting("fleet/qwen3-8b") == 1, message="a client in line")
    waiter.join(10)
    until(lambda: slots.waiting("fleet/qwen3-8b") == 0, message="the gone client's place given up")
    streaming.close()  # killed mid-answer: its connection closes
    until(lambda: member_counts(1) == {served_by(0): 0}, message="the killed stream's count released")


def test_counts_are_released_when_the_host_dies_mid_answer(fleet_of, gateway, key):
    hosts = fleet_of(1, slots_each=1, decode=0.05, reply=["word "] * 50)
    hosts[0].drop_after = 5  # the host's connection breaks after five events
    headers = {"Authorization": f"Bearer {key}"}
    with httpx.Client(base_url=gateway.base_url, timeout=20) as client:
        with client.stream("POST", "/v1/chat/completions", headers=headers, json={
                "model": "fleet/qwen3-8b", "stream": True, "messages": [{"role": "user", "content": "hi"}]}) as response:
            chunks = response.iter_raw()
            received = next(chunks)
            assert member_counts(1) == {served_by(0): 1}  # counted while it streams
            received += b"".join(chunks)
    assert b"upstream_disconnected" in received
    until(lambda: member_counts(1) == {served_by(0): 0}, message="the broken stream's count released")
    hosts[0].stop()  # and a host that is gone altogether: the refused request is not counted either
    failed = gateway.post("/v1/chat/completions", headers=headers, json={
        "model": "fleet/qwen3-8b", "messages": [{"role": "user", "content": "again"}]})
    assert failed.status_code == 502
    assert member_counts(1) == {served_by(0): 0}


# -- capacity and strategies ------------------------------------------------------------------------


def test_slots_are_read_from_the_hosts_props_once_the_model_answered(fleet_of, gateway, key):
    fleet_of(2, slots_each=3)
    response = gateway.post("/v1/chat/completions", headers={"Authorization": f"Bearer {key}"},
                            json={"model": "fleet/qwen3-8b", "messages": [{"role": "user", "content": "hi"}]})
    from providers.routing import resolve

    member = resolve("fleet/qwen3-8b").candidates
    answered = next(r for r in member if str(r.ref) == response.headers["X-BooChat-Served-By"])
    until(lambda: slots.capacity(answered) == 3, message="total_slots learned from /props")


def test_round_robin_gives_the_members_their_turns_whatever_they_cached(fleet_of, gateway, key):
    fleet_of(3, strategy=PoolStrategy.ROUND_ROBIN)
    members = [gateway.post("/v1/chat/completions", headers={"Authorization": f"Bearer {key}"}, json={
        "model": "fleet/qwen3-8b", "messages": [{"role": "user", "content": "same"}]}).headers["X-BooChat-Served-By"]
        for _ in range(4)]
    assert members == [served_by(0), served_by(1), served_by(2), served_by(0)]


def test_least_busy_takes_the_member_with_the_fewest_requests_per_slot(fleet_of, gateway, key):
    fleet_of(3, strategy=PoolStrategy.LEAST_BUSY, decode=0.01, reply=["word "] * 1000, override=2)
    headers = {"Authorization": f"Bearer {key}"}
    with httpx.Client(base_url=gateway.base_url, timeout=30) as client:
        held = [hold(client, headers, f"hold {n}") for n in range(3)]  # one on each member
        assert sorted(h.headers["X-BooChat-Served-By"] for h in held) == [served_by(i) for i in range(3)]
        held[0].close()  # box0 has a free slot more than the others now
        until(lambda: member_counts(3)[served_by(0)] == 0, message="box0's request ended")
        for host in fleet_of.started:
            host.reply = ["short"]
        same_as_box1 = client.post("/v1/chat/completions", headers=headers, json={
            "model": "fleet/qwen3-8b", "messages": [{"role": "user", "content": "hold 1"}]})  # box1's prompt
        for stream in held[1:]:
            stream.close()
    assert same_as_box1.headers["X-BooChat-Served-By"] == served_by(0)


class HeldRedis:
    """A TCP relay in front of Redis that holds every ZREM (a lease's end) until `release()`: a Redis
    that stopped answering, as far as ending counts goes."""

    def __init__(self, url):
        from urllib.parse import urlsplit

        parts = urlsplit(url)
        self.target, self.db = (parts.hostname, parts.port or 6379), parts.path
        self.gate = threading.Event()
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"redis://127.0.0.1:{self.listener.getsockname()[1]}{self.db}"
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            server = socket.create_connection(self.target)
            threading.Thread(target=self._pump, args=(client, server, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(server, client, False), daemon=True).start()

    def _pump(self, source, sink, held):
        try:
            while chunk := source.recv(65536):
                if held and b"$4\r\nZREM\r\n" in chunk:
                    self.gate.wait()
                sink.sendall(chunk)
        except OSError:
            pass
        finally:
            for end in (source, sink):
                with contextlib.suppress(OSError):
                    end.shutdown(socket.SHUT_RDWR)

    def release(self):
        self.gate.set()

    def close(self):
        self.release()
        self.listener.close()


def test_an_answers_end_never_waits_for_redis_on_the_event_loop(fleet_of, asgi_server, key, settings):
    import uuid

    import redis

    url = redis_url()
    relay = HeldRedis(url)
    prefix = f"test-{uuid.uuid4().hex[:8]}"
    settings.REDIS_URL, settings.BOOCHAT_CACHE_PREFIX = relay.url, prefix
    settings.BOOCHAT_CACHE_TIMEOUT = 60  # a blocking call would hold the loop that long
    fleet_of(1, slots_each=1, override=1)
    store = redis.Redis.from_url(url)
    leases = f"{prefix}:fleet:inflight:{served_by(0)}"
    try:
        with httpx.Client(base_url=asgi_server.url, timeout=30) as client, ThreadPoolExecutor(1) as pool:
            answer = pool.submit(client.post, "/v1/chat/completions", headers={"Authorization": f"Bearer {key}"},
                                 json={"model": "fleet/qwen3-8b", "messages": [{"role": "user", "content": "hi"}]})
            until(answer.done, timeout=15, message="the answer while Redis holds its lease's end")
            assert answer.result().status_code == 200
            assert store.zcard(leases) == 1  # its end is still on its way
            relay.release()
            until(lambda: store.zcard(leases) == 0, message="the lease ended once Redis answered")
    finally:
        relay.close()
        for stale in store.scan_iter(f"{prefix}:*"):
            store.delete(stale)


# -- several workers --------------------------------------------------------------------------------


def redis_url():
    """The Redis the suite may use: REDIS_URL, else a local one; the test skips without either."""
    import os

    import redis

    url = os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/11"
    try:
        redis.Redis.from_url(url, socket_connect_timeout=1).ping()
    except redis.RedisError:
        pytest.skip(f"needs Redis at {url} (REDIS_URL) to share counts between worker processes")
    return url


def test_two_workers_share_the_counts_and_the_line_through_redis(fleet_of, app_process, key):
    import uuid

    import redis

    url = redis_url()
    prefix = f"test-{uuid.uuid4().hex[:8]}"
    hosts = fleet_of(1, slots_each=2, decode=0.02, reply=["word "] * 10, override=1)  # the file says 1 slot
    base, _ = app_process(workers=2, REDIS_URL=url, BOOCHAT_CACHE_PREFIX=prefix)
    headers = {"Authorization": f"Bearer {key}"}

    def stream(n):
        with httpx.Client(base_url=base, timeout=30) as client:  # a connection each: both workers take some
            return client.post("/v1/chat/completions", headers=headers, json={
                "model": "fleet/qwen3-8b", "stream": True, "messages": [{"role": "user", "content": f"task {n}"}]})

    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(stream, range(8)))
    assert [a.status_code for a in answers] == [200] * 8 and all("[DONE]" in a.text for a in answers)
    assert len(hosts[0].requests_to("/v1/chat/completions")) == 8
    assert hosts[0].slots.most_active == 1  # one at a time, whichever worker took the request
    store = redis.Redis.from_url(url)
    until(lambda: store.zcard(f"{prefix}:fleet:inflight:box0/qwen3-8b") == 0, message="every lease ended")
    assert store.zcard(f"{prefix}:fleet:line:fleet/qwen3-8b") == 0
    for stale in store.scan_iter(f"{prefix}:*"):
        store.delete(stale)


# -- what people see ----------------------------------------------------------------------------------


def test_a_chat_answer_says_how_much_of_its_prompt_was_cached_and_models_shows_the_pool_now(fleet_of, user_client):
    from django.urls import reverse

    from tests.boochat.test_chat import new_session, send

    fleet_of(2, override=2)
    chat = new_session(user_client, "fleet/qwen3-8b", title="t", system_prompt=SYSTEM)
    send(user_client, chat, "first question")
    send(user_client, chat, "second question")
    first, second = chat.messages.filter(role="assistant").order_by("id")
    assert second.served_by == first.served_by  # its conversation is cached there
    page = user_client.get(chat.get_absolute_url()).content.decode()
    prompt = second.usage["prompt_tokens"]
    assert second.cached_prompt_tokens > prompt // 2
    assert f"{second.cached_prompt_tokens} of {prompt} prompt tokens cached" in page
    models = user_client.get(reverse("picker")).content.decode()
    assert "Pools now" in models and "<code>fleet/qwen3-8b</code> · cache · 0 waiting" in models
    table = models[models.index("Pools now"):]
    row = table[table.index(f"<code>{second.served_by}</code>"):]
    assert "0 / 2" in row[:200]
    reused = round(100 * second.cached_prompt_tokens / (first.usage["prompt_tokens"] + prompt))
    assert f"{reused} %" in row[:300]


# -- the provider file --------------------------------------------------------------------------------


def fleet_file(strategy=None, slots_value=None):
    import json

    member = {"slots": slots_value} if slots_value is not None else {}
    pool = {"strategy": strategy} if strategy is not None else {}
    return json.dumps({"providers": [
        {"slug": "box0", "kind": "llama_server", "base_url": "http://127.0.0.1:9", "default": True,
         "models": {"qwen3-8b": member}},
        {"slug": "fleet", "kind": "pool", "models": {"qwen3-8b": {"members": ["box0/qwen3-8b"]}}, **pool},
    ]})


def test_the_provider_file_sets_a_pools_strategy_and_a_members_slots():
    from providers.provider_file import parse_provider_file, provider_to_entry
    from providers.sync import apply_plan, plan_sync

    box, fleet = parse_provider_file("p.json", fleet_file("least_busy", 3))
    assert fleet.strategy == "least_busy" and box.overrides["qwen3-8b"].slots == 3
    apply_plan(plan_sync([box, fleet], source="file", origin="p.json"))
    assert Provider.objects.get(slug="fleet").strategy == "least_busy"
    assert ModelOverride.objects.get(provider__slug="box0").slots == 3
    assert provider_to_entry(Provider.objects.get(slug="fleet"))["strategy"] == "least_busy"
    assert provider_to_entry(Provider.objects.get(slug="box0"))["models"]["qwen3-8b"]["slots"] == 3
    _, default = parse_provider_file("p.json", fleet_file())
    assert default.strategy == "cache"


@pytest.mark.parametrize("strategy, slots_value, field, reason", [
    ("fastest", None, "strategy", 'unknown strategy "fastest"; expected one of cache, least_busy, round_robin'),
    (None, 0, "models.qwen3-8b.slots", "must be a positive whole number of requests, not 0"),
    (None, "4", "models.qwen3-8b.slots", 'not "4"'),
])
def test_the_provider_file_refuses_a_bad_strategy_or_slots_naming_the_field(strategy, slots_value, field, reason):
    from providers.provider_file import ProviderFileError, parse_provider_file

    with pytest.raises(ProviderFileError) as caught:
        parse_provider_file("p.json", fleet_file(strategy, slots_value))
    assert caught.value.field == field and reason in caught.value.reason and "p.json" in str(caught.value)
