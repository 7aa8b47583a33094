"""The worker's HTTP settings and token check (pure parts of orchestrator/runtime/web.py)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from orchestrator.config import load_settings, secret_list
from orchestrator.runtime.web import OPEN_PATHS, authorized, web_options


def test_bearer_token_is_required_and_compared_whole() -> None:
    assert authorized("Bearer s3cret", "s3cret")
    assert authorized("bearer s3cret", "s3cret")
    assert not authorized("Bearer s3cre", "s3cret")
    assert not authorized("Bearer s3cret2", "s3cret")
    assert not authorized("Basic s3cret", "s3cret")
    assert not authorized("s3cret", "s3cret")
    assert not authorized(None, "s3cret")
    assert not authorized("Bearer ", "")


def test_no_configured_token_authorizes_nothing() -> None:
    assert not authorized("Bearer ", None)
    assert not authorized("Bearer None", None)
    assert not authorized("Bearer ", "")


_TOKEN = st.text(
    st.characters(blacklist_characters=",", blacklist_categories=("Zs", "Zl", "Zp", "Cc", "Cs")),
    min_size=1,
    max_size=40,
)


@given(st.text(max_size=40), _TOKEN)
def test_only_the_exact_token_passes(given_token: str, token: str) -> None:
    assert authorized(f"Bearer {given_token}", token) == (given_token.strip() == token)


def test_binds_web_host_and_hides_faust_internals() -> None:
    opts = web_options(load_settings(environ={}))
    assert opts["web_bind"] == opts["web_host"] == "127.0.0.1"
    assert not any(opts[f"web_{name}_enabled"] for name in ("tables", "router", "graph", "stats"))
    assert len(opts["web_application_options"]["middlewares"]) == 1
    wide = web_options(load_settings(environ={"ORCH_WEB_HOST": "0.0.0.0"}))
    assert wide["web_bind"] == "0.0.0.0"
    assert {"/metrics", "/healthz", "/readyz"} == OPEN_PATHS


def test_two_tokens_while_one_is_rotated() -> None:
    assert secret_list(" new-token , old-token ,") == ("new-token", "old-token")
    assert secret_list(None) == ()
    assert authorized("Bearer old-token", "new-token,old-token")
    assert authorized("Bearer new-token", ("new-token", "old-token"))
    assert not authorized("Bearer new-token,old-token", "new-token,old-token")
    assert not authorized("Bearer other", "new-token,old-token")
