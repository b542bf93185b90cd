#!/bin/sh
# What the test suite needs on a Debian machine: the real libvirt client (virsh and
# its RNG schemas) and QEMU, teamc with its test extras in .venv (install.sh), and the guest image
# `teamc verify` boots (built from Debian's packages into .cache/teamc, kept there). Idempotent.
set -eu
cd "$(dirname "$0")/.."
SUDO=""
[ "$(id -u)" = 0 ] || SUDO=sudo
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq \
    libvirt0 libvirt-clients qemu-system-x86 graphviz neovim make >/dev/null
# Node for the TextMate grammar test; a Node that is already there (with its own npm) is kept.
command -v npm >/dev/null || DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq nodejs npm >/dev/null
sh install.sh test
# The editor tests: VS Code's TextMate engine (vscode-textmate, vscode-oniguruma) from the lock file.
(cd editors/test && npm ci --no-audit --no-fund --silent)
# apt-get download (used by the guest image build) needs the package lists updated above.
TEAMC_CACHE="${TEAMC_CACHE:-$PWD/.cache/teamc}" .venv/bin/python -m teamc verify --build-guest-image >/dev/null
