# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
"""Repository-wide pytest setup: make `ansible_collections.netlb.ipvs` importable from
this checkout (the collection lives in collections/, not in an installed path), and
register the stand-in Kubernetes API server's fixtures (tests/kube_api, imported as
`kube_api`: `kube_api` and `kube_api_server`) for every test."""

import os
import sys

REPO = os.path.dirname(os.path.abspath(__file__))
COLLECTIONS = os.path.join(REPO, 'collections')
TESTS = os.path.join(REPO, 'tests')
for path in (COLLECTIONS, TESTS):
    if path not in sys.path:
        sys.path.insert(0, path)

pytest_plugins = ['kube_api.plugin']
