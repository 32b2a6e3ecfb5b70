"""Shared fixtures for the batch tests: the tutorial's example files."""

from __future__ import annotations

import pytest

SEED_SCRIPT = """#!/bin/bash
id=$1
cadc-data get CFHT ${id}
funpack -D ${id}.fits.fz
cp /usr/share/source-extractor/default* .
echo 'NUMBER
MAG_AUTO
X_IMAGE
Y_IMAGE' > default.param
source-extractor ${id}.fits -CATALOG_NAME ${id}.cat
vcp ${id}.cat vos:[VOSpace]/
"""

SEED_SUBMIT = """executable = do_catalogue.bash

output = do_catalogue-$(arguments).out
error  = do_catalogue-$(arguments).err
log    = do_catalogue-$(arguments).log

queue arguments from (
  1056215p
  1056216p
  1056217p
  1056218p
)
"""


@pytest.fixture
def seed_submit() -> str:
    return SEED_SUBMIT


@pytest.fixture
def seed_script() -> str:
    return SEED_SCRIPT
