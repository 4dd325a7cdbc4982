#!/usr/bin/env bash
# Installs the Debian packages the test suite runs for real (promtool, amtool,
# prometheus, alertmanager, kubectl for `kubectl kustomize`, chromium for the
# portal's browser test). Skips what is
# already there; needs root or sudo.
set -euo pipefail
need=()
command -v promtool >/dev/null || need+=(prometheus)
command -v amtool >/dev/null || need+=(prometheus-alertmanager)
# Debian 12's kubectl is 1.20 (kustomize 2.0); deploy/k8s renders with it and with
# current kubectl alike. A kubectl already on PATH is used as it is.
command -v kubectl >/dev/null || need+=(kubernetes-client)
# tests/portal/test_browser.py drives it headless (--dump-dom, --screenshot)
command -v chromium >/dev/null || need+=(chromium)
[ ${#need[@]} -eq 0 ] && exit 0
sudo=""
[ "$(id -u)" -ne 0 ] && sudo="sudo"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
# The Debian packages start their daemons where systemd runs; the tests start their own.
