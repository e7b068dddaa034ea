"""The suite-wide guard in ``tests/conftest.py`` that fails a test which logs an exception.

Each case runs in its own pytest subprocess: an in-process run would log into this test's guard.
"""

from __future__ import annotations

from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

REPO: Path = Path(__file__).resolve().parents[1]

CONFTEST = """
from tests.conftest import fail_on_logged_exceptions
"""

INI = """
[pytest]
addopts = --strict-markers -p no:cacheprovider
filterwarnings = error
asyncio_default_fixture_loop_scope = function
markers =
    expect_error_log(match=None): the test expects ERROR logs with exception info
"""


@pytest.fixture
def suite(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    """A throwaway suite that uses the real guard from this repository's conftest."""
    monkeypatch.setenv("PYTHONPATH", str(REPO))
    pytester.makeconftest(CONFTEST)
    pytester.makeini(INI)
    return pytester


def test_a_test_that_logs_an_exception_fails_and_says_where(suite: pytest.Pytester) -> None:
    suite.makepyfile(
        """
        import logging

        def test_it():
            try:
                {}["missing"]
            except KeyError:
                logging.getLogger("konak.sample").exception("lookup of %s failed", "missing")
        """
    )
    result = suite.runpytest_subprocess()
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(
        [
            "*1 logged exceptions*",
            "*konak.sample: lookup of missing failed -- KeyError: 'missing' (raised at *"
            "test_a_test_that_logs_an_exception_fails_and_says_where.py:5 in test_it)",
        ]
    )


def test_a_test_marked_as_expecting_the_log_passes(suite: pytest.Pytester) -> None:
    suite.makepyfile(
        """
        import logging
        import pytest

        @pytest.mark.expect_error_log
        def test_any():
            try:
                raise ValueError("bad")
            except ValueError:
                logging.getLogger("x").exception("failed")

        @pytest.mark.expect_error_log(match="ValueError: bad")
        def test_matching():
            try:
                raise ValueError("bad")
            except ValueError:
                logging.getLogger("x").exception("failed")
        """
    )
    suite.runpytest_subprocess().assert_outcomes(passed=2)


def test_a_record_the_match_does_not_cover_still_fails(suite: pytest.Pytester) -> None:
    suite.makepyfile(
        """
        import logging
        import pytest

        @pytest.mark.expect_error_log(match="client went away")
        def test_it():
            for message in ("client went away", "database is locked"):
                try:
                    raise OSError(message)
                except OSError:
                    logging.getLogger("x").exception("handler failed")
        """
    )
    result = suite.runpytest_subprocess()
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(
        [
            "*1 logged records not matching expect_error_log(match='client went away')*",
            "*x: handler failed -- OSError: database is locked*",
        ]
    )
    result.stdout.no_fnmatch_line("*OSError: client went away (raised*")


def test_an_error_without_exception_info_passes(suite: pytest.Pytester) -> None:
    suite.makepyfile(
        """
        import logging

        def test_it():
            logging.getLogger("x").error("the broker refused us")
            logging.getLogger("x").warning("slow", exc_info=True)
        """
    )
    suite.runpytest_subprocess().assert_outcomes(passed=1)


def test_an_exception_logged_by_another_thread_fails(suite: pytest.Pytester) -> None:
    suite.makepyfile(
        """
        import logging
        import threading

        def work():
            try:
                raise ConnectionResetError("peer gone")
            except ConnectionResetError:
                logging.getLogger("konak.worker").exception("worker crashed")

        def test_it():
            thread = threading.Thread(target=work)
            thread.start()
            thread.join(10)
        """
    )
    result = suite.runpytest_subprocess()
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(["*konak.worker: worker crashed -- ConnectionResetError*"])


def test_an_exception_logged_by_an_asyncio_task_fails(suite: pytest.Pytester) -> None:
    suite.makepyfile(
        """
        import asyncio
        import logging

        async def handler():
            try:
                raise RuntimeError("boom")
            except RuntimeError:
                logging.getLogger("konak.loop").exception("callback failed")

        def test_it():
            asyncio.run(handler())
        """
    )
    result = suite.runpytest_subprocess()
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(["*konak.loop: callback failed -- RuntimeError: boom*"])


def test_an_exception_logged_after_the_test_is_not_blamed_on_it(suite: pytest.Pytester) -> None:
    suite.makepyfile(
        """
        import logging
        import pytest

        @pytest.fixture(scope="module")
        def service():
            yield
            try:
                raise RuntimeError("late")
            except RuntimeError:
                logging.getLogger("x").exception("shutdown failed")

        def test_it(service):
            pass
        """
    )
    suite.runpytest_subprocess().assert_outcomes(passed=1)


def test_caplog_still_sees_the_records(suite: pytest.Pytester) -> None:
    suite.makepyfile(
        """
        import logging
        import pytest

        @pytest.mark.expect_error_log(match="failed")
        def test_it(caplog):
            caplog.set_level(logging.ERROR)
            try:
                raise ValueError("bad")
            except ValueError:
                logging.getLogger("x").exception("failed")
            assert [r.getMessage() for r in caplog.records] == ["failed"]
            assert "ValueError: bad" in caplog.text
        """
    )
    suite.runpytest_subprocess().assert_outcomes(passed=1)


def test_a_marker_with_unknown_arguments_is_refused(suite: pytest.Pytester) -> None:
    suite.makepyfile(
        """
        import pytest

        @pytest.mark.expect_error_log("regex")
        def test_it():
            pass
        """
    )
    result = suite.runpytest_subprocess()
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(["*expect_error_log takes only match=<regex>*"])
