"""The JSON API fixtures of tests/hub/auth, for enrolment tests."""

from tests.hub.auth.conftest import api, make_api

__all__ = ["api", "make_api"]
