"""The JSON API fixtures of tests/hub/api, for enrolment tests."""

from tests.hub.api.conftest import api, make_api

__all__ = ["api", "make_api"]
