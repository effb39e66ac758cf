import pytest

from boochat.sse import StreamAccumulator
from tests.fakes.fixtures import decode_chunked, fixture_bytes, http_fixture
from tests.fakes.llama_swap import CAPTURED_PIECES


@pytest.fixture(params=[False, True], ids=["eager", "lazy"], autouse=True)
def lazy(request):
    """Every test reads its streams both ways: as they come, and lazily (as a relay does)."""
    return request.param


@pytest.fixture
def feed_in_pieces(lazy):
    def feed(data, size):
        acc = StreamAccumulator(lazy=lazy)
        for start in range(0, len(data), size):
            acc.feed(data[start:start + size])
        acc.close()
        return acc

    return feed


@pytest.mark.parametrize("size", [1, 7, 64, 100_000])
def test_the_captured_stream_reads_the_same_however_it_is_split(feed_in_pieces, size):
    body = http_fixture("llama-server/12-a-chat-stream-usage.http")[2]
    acc = feed_in_pieces(body, size)
    assert acc.text == "".join(CAPTURED_PIECES)
    assert acc.done and acc.finish_reason == "stop"
    assert acc.usage["total_tokens"] == 40
    assert acc.tokens_per_second == pytest.approx(3451.08, rel=1e-4)
    assert acc.error == "" and acc.malformed == 0


def test_the_wire_capture_with_several_events_per_network_read(feed_in_pieces):
    wire = fixture_bytes("llama-server/90-a-chat-stream-usage.wire")
    acc = feed_in_pieces(decode_chunked(wire.partition(b"\r\n\r\n")[2]), 0x1ee)
    assert acc.text.startswith("ourRA")
    assert acc.done


def test_deepseek_keep_alives_and_reasoning(feed_in_pieces):
    acc = feed_in_pieces(fixture_bytes("deepseek/chat-stream-thinking.sse"), 50)
    assert (acc.reasoning_text, acc.text) == ("The user greets.", "Hello!")
    assert acc.usage["completion_tokens_details"]["reasoning_tokens"] == 5
    assert acc.status == []


def test_llama_swap_loading_messages_are_status_not_reasoning(feed_in_pieces):
    acc = feed_in_pieces(fixture_bytes("llama-swap/v250-send-loading-state-stream.sse"), 33)
    assert acc.status == ["llama-swap loading model: qwen3-30b\n", "...", "Done! (12.34s)\n"]
    assert acc.reasoning_text == ""
    assert acc.text == "Hello"


@pytest.mark.parametrize("stream, error", [
    (b'data: {"choices":[{"delta":{"content":"a"}}]}\n\ndata: {"error":{"code":500,"message":"slot crashed","type":"server_error"}}\n\n', "slot crashed"),
    (b'data: {"choices":[{"delta":{"content":"a"}}]}\n\nerror: {"message":"old style"}\n\n', '{"message":"old style"}'),
    (b'data: {"error":"plain string"}\n\n', "plain string"),
])
def test_errors_after_the_stream_started(feed_in_pieces, stream, error):
    acc = feed_in_pieces(stream, 5)
    assert acc.error == error


def test_lines_that_are_not_json_are_counted_not_fatal(feed_in_pieces):
    acc = feed_in_pieces(b'data: {not json\n\ndata: [1,2]\n\ndata: {"choices":[{"delta":{"content":"ok"}}]}\r\n\r\n', 4)
    assert acc.malformed == 2 and acc.text == "ok"


def test_a_truncated_last_event_is_read_at_close(lazy):
    acc = StreamAccumulator(lazy=lazy)
    acc.feed(b'data: {"choices":[{"delta":{"content":"a"}}]}\n\ndata: {"choices":[{"delta":{"content":"b"}}]}')
    acc.read()
    assert acc.text == "a"
    acc.close()
    assert acc.text == "ab" and not acc.done


def test_tool_call_deltas_are_assembled(feed_in_pieces):
    stream = (
        b'data: {"id":"x","choices":[{"delta":{"tool_calls":[{"index":0,"id":"call_1","type":"function","function":{"name":"get_","arguments":""}}]}}]}\n\n'
        b'data: {"id":"x","choices":[{"delta":{"tool_calls":[{"index":0,"function":{"name":"weather","arguments":"{\\"city\\":"}}]}}]}\n\n'
        b'data: {"id":"x","choices":[{"delta":{"tool_calls":[{"index":0,"function":{"arguments":"\\"Oslo\\"}"}}]},"finish_reason":"tool_calls"}]}\n\n'
    )
    acc = feed_in_pieces(stream, 9)
    assert acc.tool_call_list() == [{"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city":"Oslo"}'}}]
    assert acc.finish_reason == "tool_calls"


def test_thousands_of_events_in_one_read_with_mixed_line_endings(lazy):
    # A relay that fell behind reads a backlog at once; every event in it counts, in order.
    separators = [b"\n\n", b"\r\n\r\n", b"\r\r"]
    events = [b'data: {"choices":[{"delta":{"content":"%d "}}]}' % i + separators[i % 3] for i in range(20000)]
    acc = StreamAccumulator(lazy=lazy)
    acc.feed(b"".join(events[:-1]) + events[-1][:10])
    acc.feed(events[-1][10:] + b"data: [DONE]\n\n")
    acc.read()
    assert acc.text == "".join(f"{i} " for i in range(20000)) and acc.done


def test_a_lazy_reader_reads_the_first_token_at_once_and_the_rest_when_asked():
    acc = StreamAccumulator(lazy=True)
    acc.feed(b'data: {"id":"x","choices":[{"delta":{"role":"assistant","content":null}}]}\n\n')
    acc.feed(b'data: {"id":"x","choices":[{"delta":{"content":"Hel"}}]}\n\n')
    first = acc.first_token_at
    assert acc.text == "Hel" and first is not None  # the time to first token is the token's arrival
    acc.feed(b'data: {"id":"x","choices":[{"delta":{"content":"lo"}}]}\n\ndata: {"id":"x","choices":[{"delta":{"content":"!"}}]}\n\n')
    assert acc.text == "Hel"  # not read yet
    acc.read()
    assert acc.text == "Hello!" and acc.first_token_at == first


def _event_by_event(blocks):
    """What reading each event alone gives (the line-by-line reading every event once had)."""
    acc = StreamAccumulator()
    for block in blocks:
        acc._event(block)
    return acc


_ODD_EVENTS = [
    b'data: {"id":"x","choices":[{"delta":{"content":"first"}}]}',
    b'data: {"id":"x","choices":[{"delta":{"content":"a"}}]},{"id":"y","choices":[{"delta":{"content":"b"}}]}',
    b'data: {"id":"x","choices":[{"delta":{"content":"c"}}]} ',
    b'data: {not json}',
    b'data: {"id":"x","choices":[{"delta":{"content":"line\\u2028sep \xe2\x80\xa8 raw"}}]}',
    b'data: {"id":"x","choices":[{"delta":{"content":"caf\xc3\xa9 \xff bad byte"}}]}',
    b'data: {"id":"x","choices":[{"delta":{"content":"d"}}]}\ndata: {"more":1}',
    b'data: {"id":"x","choices":[{"delta":{"content":"e"}}]}{"id":"x"}',
    b'data: {"id":"x","choices":[],"usage":{"total_tokens":7}}',
    b': keep-alive',
    b'data: {"id":"x","choices":[{"delta":{},"finish_reason":"stop"}]}',
    b'data: [DONE]',
]


@pytest.mark.parametrize("size", [1, 13, 100_000])
@pytest.mark.parametrize("reads", [1, 3])
def test_events_read_together_read_as_each_alone(size, reads):
    stream = b"".join(block + b"\n\n" for block in _ODD_EVENTS)
    acc = StreamAccumulator(lazy=True)
    for start in range(0, len(stream), size):
        acc.feed(stream[start:start + size])
        if start % (reads * size) == 0:
            acc.read()
    acc.close()
    alone = _event_by_event(_ODD_EVENTS)
    fields = ("content", "reasoning", "status", "tool_calls", "usage", "timings", "finish_reason", "error", "done", "malformed")
    assert {f: getattr(acc, f) for f in fields} == {f: getattr(alone, f) for f in fields}
    assert acc.malformed == 4 and acc.done
    assert "line\u2028sep \u2028 raw" in acc.content  # U+2028 inside a JSON string ends no line
