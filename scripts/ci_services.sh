#!/usr/bin/env bash
# Install the Debian packages the server/browser/PACS tests need: Chromium (driven by
# Playwright through executable_path, never `playwright install`), Orthanc and its DICOMweb
# plugin (started by tests/test_orthanc*.py on loopback with its own config), sqlite3 (backup
# check in docs). Idempotent: does nothing when everything is present. Needs root (or sudo).
set -euo pipefail

packages=(chromium orthanc orthanc-dicomweb sqlite3)
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
    echo "ci_services: all present (${packages[*]})"
    exit 0
fi
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
echo "ci_services: installing ${missing[*]}"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
# Orthanc's package does not start a service here (no systemd); tests run the binary themselves.
/usr/sbin/Orthanc --version | head -1
/usr/bin/chromium --version
