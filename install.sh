#!/bin/sh
# Install this checkout of teamc (editable) into .venv, creating it if needed: afterwards
# `.venv/bin/teamc` and `.venv/bin/python -m teamc` run this tree's code.
# Usage: sh install.sh [EXTRA]   (`sh install.sh test` adds the test dependencies)
#
# A venv, because the python3 of Debian and Ubuntu refuses `pip install` outside one
# (PEP 668, "externally-managed-environment"); it is the same here and inside a virtualenv.
# --system-site-packages lets it reuse what the system already has (lxml, pytest, ...).
set -eu
cd "$(dirname "$0")"
if [ ! -x .venv/bin/python ]; then
    if ! python3 -m venv --system-site-packages .venv >/dev/null 2>&1; then
        # Debian and Ubuntu ship the venv module's ensurepip in a package of its own.
        rm -rf .venv
        SUDO=""
        [ "$(id -u)" = 0 ] || SUDO=sudo
        $SUDO apt-get update -qq
        DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq python3-venv >/dev/null
        python3 -m venv --system-site-packages .venv
    fi
fi
.venv/bin/python -m pip install -q --disable-pip-version-check -e ".${1:+[$1]}"
