# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
"""Repository-wide pytest setup: make `ansible_collections.netlb.ipvs` importable from
this checkout (the collection lives in collections/, not in an installed path)."""

import os
import sys

COLLECTIONS = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'collections')
if COLLECTIONS not in sys.path:
    sys.path.insert(0, COLLECTIONS)
