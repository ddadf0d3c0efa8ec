#!/usr/bin/env bash
# Installs the S3-compatible server the object-storage tests start (moto's moto_server, from
# PyPI) into a virtual environment: scripts/install-s3-server.sh DIR. Idempotent: a DIR that
# already has the pinned version is left alone.
set -euo pipefail
venv="${1:?usage: install-s3-server.sh VENV_DIR}"
version="5.2.5"
if [ -x "$venv/bin/moto_server" ] && "$venv/bin/python" -c "import moto, sys; sys.exit(moto.__version__ != '$version')" 2>/dev/null; then
    exit 0
fi
python3 -m venv "$venv"
"$venv/bin/pip" install --quiet --disable-pip-version-check "moto[server]==$version"
"$venv/bin/moto_server" --help >/dev/null
