# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
"""Repository-wide pytest setup: make `ansible_collections.netlb.ipvs` importable from
this checkout (the collection lives in collections/, not in an installed path), and
register the stand-in Kubernetes API server's fixtures (tests/kube_api, imported as
`kube_api`: `kube_api` and `kube_api_server`) for every test. In CI (CI set, as .ci/run
does) a skipped test fails."""

import os
import sys

import pytest

REPO = os.path.dirname(os.path.abspath(__file__))
COLLECTIONS = os.path.join(REPO, 'collections')
TESTS = os.path.join(REPO, 'tests')
for path in (COLLECTIONS, TESTS):
    if path not in sys.path:
        sys.path.insert(0, path)

pytest_plugins = ['kube_api.plugin']


def in_ci():
    """CI=1 (set by .ci/run) or CI=true (set by hosted runners)."""
    return os.environ.get('CI', '').strip().lower() not in ('', '0', 'false', 'no')


def _skip_fails_in_ci(report):
    if report.skipped and in_ci() and not hasattr(report, 'wasxfail'):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.outcome = 'failed'
        report.longrepr = 'skipped in CI, where every test must run (CI=%s): %s' % (os.environ['CI'], reason)


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector):
    """A whole file skipped (importorskip at its top) fails in CI too."""
    outcome = yield
    _skip_fails_in_ci(outcome.get_result())


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """In CI a skipped test is a failure: a test that quietly does not run proves
    nothing, and a runner without root, systemd-analyze or yaml must be fixed, not
    reported green. Locally a skip stays a skip."""
    outcome = yield
    _skip_fails_in_ci(outcome.get_result())
