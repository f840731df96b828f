#!/usr/bin/env bash
# Make sure the machine has what WeasyPrint needs (Pango, fonts) and a Python >= 3.11.
# Installs with apt-get where we can (root on Debian/Ubuntu); otherwise says in one line how.
set -euo pipefail

PY=${PY:-python3}
if ! "$PY" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
  echo "Python 3.11 or newer is needed: install it, then run: make PY=python3.11 <target>" >&2
  exit 1
fi

missing=()
# Read the library cache once: `ldconfig -p | grep -q` would fail under pipefail (SIGPIPE).
libs=$(ldconfig -p 2>/dev/null || /sbin/ldconfig -p 2>/dev/null || true)
has_lib() { [[ "$libs" == *"$1"* ]]; }
has_lib 'libpango-1.0.so' || missing+=(libpango-1.0-0)
has_lib 'libpangoft2-1.0.so' || missing+=(libpangoft2-1.0-0)
# harfbuzz-subset makes font subsetting fast and PDF bytes reproducible (WeasyPrint will require it).
has_lib 'libharfbuzz-subset.so' || missing+=(libharfbuzz-subset0)
fonts=$(fc-list 2>/dev/null || true)
[[ "${fonts,,}" == *dejavu* ]] || missing+=(fonts-dejavu-core fontconfig)
"$PY" -c 'import ensurepip' 2>/dev/null || missing+=(python3-venv)
# `--test` (make install-dev): what the tests run for real besides Python.
if [ "${1:-}" = "--test" ]; then
  # The evidence page's test drives a real headless Chromium: Debian's package, not a browser
  # download (Playwright uses the system's Chromium).
  if ! command -v chromium >/dev/null 2>&1 && ! command -v chromium-browser >/dev/null 2>&1 \
    && ! command -v google-chrome >/dev/null 2>&1; then
    missing+=(chromium)
  fi
  # The state database's tests start a throwaway PostgreSQL server of their own
  # (tests/postgres.py): the server binaries, not a running cluster.
  compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null || missing+=(postgresql)
  # A returned owner workbook as LibreOffice saves it (tests/test_review_libreoffice.py): Calc
  # without its GUI, converting headless.
  command -v soffice >/dev/null 2>&1 || command -v libreoffice >/dev/null 2>&1 \
    || missing+=(libreoffice-calc-nogui)
fi

if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing system packages: ${missing[*]}" >&2
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
elif command -v apt-get >/dev/null 2>&1; then
  echo "missing system packages; run: sudo apt-get install -y ${missing[*]}" >&2
  exit 1
else
  echo "missing system libraries for WeasyPrint (Pango, fonts): see https://doc.courtbouillon.org/weasyprint/stable/first_steps.html" >&2
  exit 1
fi
