#!/usr/bin/env bash
# Installs tfaas as a systemd service (run as root):
#   - a system user and group `tfaas`;
#   - a virtual environment in /opt/tfaas/venv with tfaas installed (from PACKAGE: this checkout by
#     default, or anything pip accepts, e.g. a wheel);
#   - /etc/tfaas/tfaas.yaml and /etc/tfaas/tfaas.env, unless they exist (they are never overwritten);
#   - /srv/models, for the models;
#   - /etc/systemd/system/tfaas.service, enabled at boot but not started.
#
# Usage: sudo systemd/install.sh [PACKAGE]
# Environment: PYTHON (default python3) builds the venv; VENV_OPTIONS are passed to `python -m venv`
# (e.g. --system-site-packages to use a TensorFlow installed system-wide).
# Other paths: change them in a drop-in (`systemctl edit tfaas`) rather than in this script.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
package="${1:-$(dirname "$here")}"
python="${PYTHON:-python3}"
venv=/opt/tfaas/venv
confdir=/etc/tfaas
models=/srv/models
unit=/etc/systemd/system/tfaas.service

if [ "$(id -u)" -ne 0 ]; then
    echo "install.sh: run me as root (sudo $0)" >&2
    exit 1
fi

if ! id -u tfaas >/dev/null 2>&1; then
    useradd --system --user-group --home-dir /var/lib/tfaas --no-create-home \
        --shell /usr/sbin/nologin --comment "tfaas model server" tfaas
fi

install -d -m 0755 /opt/tfaas
if [ ! -x "$venv/bin/python" ]; then
    # shellcheck disable=SC2086  # VENV_OPTIONS is a list of options
    "$python" -m venv ${VENV_OPTIONS:-} "$venv"
fi
"$venv/bin/python" -m pip install --upgrade pip
"$venv/bin/python" -m pip install --upgrade "$package"

# NOTE: root owns the settings; the service only reads them (group tfaas).
install -d -m 0750 -o root -g tfaas "$confdir"
for file in tfaas.yaml tfaas.env; do
    if [ ! -e "$confdir/$file" ]; then
        install -m 0640 -o root -g tfaas "$here/$file" "$confdir/$file"
    fi
done
install -d -m 0755 "$models"

install -m 0644 "$here/tfaas.service" "$unit"
if [ -d /run/systemd/system ]; then
    systemctl daemon-reload
    systemctl enable tfaas.service
else
    echo "install.sh: systemd is not running here; enable the unit later: systemctl enable tfaas" >&2
fi

cat <<EOF
tfaas is installed. Next:
  1. put each model's numbered versions under $models/<name>/ (readable by the tfaas user)
  2. list the models in $confdir/tfaas.yaml (and TFAAS_* overrides in $confdir/tfaas.env)
  3. systemctl start tfaas && journalctl -u tfaas -f
     curl localhost:8501/readyz     # 200 once every model serves
  After editing the model list: systemctl reload tfaas (no restart, no request fails).
EOF
