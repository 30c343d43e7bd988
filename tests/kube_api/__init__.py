# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
"""The stand-in Kubernetes API server for tests: server.py (the server), plugin.py (the
`kube_api` pytest fixture, registered by the repository's conftest.py), objects.py
(builders of realistic Service / EndpointSlice / Endpoints / Node dicts)."""
