import pytest
from hypothesis import given
from hypothesis import strategies as st

from providers.ids import LEGACY_NAMESPACE, InvalidModelId, ModelRef

slugs = st.from_regex(r"[a-z0-9][a-z0-9._-]{0,20}", fullmatch=True).filter(lambda s: s != LEGACY_NAMESPACE)
segment = st.from_regex(r"[A-Za-z0-9._:@+-]{1,20}", fullmatch=True).filter(lambda s: s not in (".", ".."))
model_names = st.lists(segment, min_size=1, max_size=3).map("/".join)
composite_ids = st.builds(lambda p, m: f"{p}/{m}", slugs, model_names)


@given(composite_ids)
def test_format_of_parse_is_identity(model_id):
    assert str(ModelRef.parse(model_id)) == model_id


@given(slugs, model_names)
def test_parse_of_format_is_identity(provider, model):
    ref = ModelRef(provider, model)
    assert ModelRef.parse(str(ref)) == ref


@given(slugs, model_names)
def test_split_is_on_the_first_slash(provider, model):
    ref = ModelRef.parse(f"{provider}/{model}")
    assert (ref.provider, ref.model) == (provider, model)


def test_model_part_may_contain_slashes():
    ref = ModelRef.parse("sam-desktop/box2/gpt-oss-20b")
    assert ref.provider == "sam-desktop"
    assert ref.model == "box2/gpt-oss-20b"


def test_bare_id_takes_the_default_provider():
    assert ModelRef.parse("qwen3-8b", default_provider="sam-desktop") == ModelRef("sam-desktop", "qwen3-8b")


def test_legacy_namespace_takes_the_default_provider():
    ref = ModelRef.parse("llama-swap/qwen3-8b", default_provider="sam-desktop")
    assert str(ref) == "sam-desktop/qwen3-8b"


def test_legacy_namespace_keeps_peer_models():
    ref = ModelRef.parse("llama-swap/box2/gpt-oss-20b", default_provider="sam-desktop")
    assert ref == ModelRef("sam-desktop", "box2/gpt-oss-20b")


def test_bare_id_without_default_is_an_error():
    with pytest.raises(InvalidModelId, match="no provider prefix"):
        ModelRef.parse("qwen3-8b")


@pytest.mark.parametrize(
    "value, problem",
    [
        ("", "empty"),
        ("sam-desktop/", "empty"),
        ("Sam/qwen", "not a provider slug"),
        ("-x/qwen", "not a provider slug"),
        ("sam-desktop//evil/x", "empty, '.' or '..' segment"),
        ("sam-desktop/../../admin", "empty, '.' or '..' segment"),
        ("sam-desktop/a/./b", "empty, '.' or '..' segment"),
        ("sam-desktop/qwen 8b", "character ' '"),
        ("sam-desktop/qwen\x00", "character '\\x00'"),
        ("sam-desktop/a?b=1", "character '?'"),
        ("sam-desktop/a%2Fb", "character '%'"),
        ("sam-desktop/" + "x" * 300, "longer than 255"),
        ("http://127.0.0.1:1/x", "not a provider slug"),
    ],
)
def test_malformed_ids_are_rejected_with_the_reason(value, problem):
    with pytest.raises(InvalidModelId) as excinfo:
        ModelRef.parse(value, default_provider="sam-desktop")
    assert problem in str(excinfo.value)


def test_protocol_relative_url_is_not_an_id():
    # "//evil/x": empty provider part, so it is neither bare nor composite.
    with pytest.raises(InvalidModelId):
        ModelRef.parse("//evil/x", default_provider="sam-desktop")


def test_non_string_is_rejected():
    with pytest.raises(InvalidModelId, match="must be a string"):
        ModelRef.parse(["sam-desktop/x"])


def test_display_names_strip_only_the_provider_prefix():
    ref = ModelRef.parse("sam-desktop/box2/gpt-oss-20b")
    assert ref.display_name == "box2/gpt-oss-20b"
    assert ModelRef.parse("sam-desktop/qwen3-8b").label == "qwen3-8b · sam-desktop"


def test_refs_are_values():
    assert ModelRef.parse("sam-desktop/qwen3-8b") == ModelRef("sam-desktop", "qwen3-8b")
    assert ModelRef.parse("sam-desktop/qwen3-8b") != ModelRef("embedding", "qwen3-8b")
    assert len({ModelRef("a", "m"), ModelRef("a", "m"), ModelRef("b", "m")}) == 2
