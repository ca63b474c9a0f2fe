#!/usr/bin/env bash
# Create or refresh everything kgrec needs on this machine; safe to run again (fast when done).
#   1. Java 17+ and Maven (installed with apt-get when missing and we are root);
#   2. the virtual environment .venv with uv and the project with all extras (torch, PyG,
#      PyKEEN, transformers, the offline MiniLM weights, neo4j driver, FastAPI, test tools);
#   3. the Java launcher for the local Neo4j, Neo4j's cypher-shell and its offline bulk importer
#      (Maven, into kg/neo4j/launcher/target, kg/neo4j/shell/target and kg/neo4j/importer/target);
#   4. the page of `kgrec browse` (npm ci + esbuild into kg/browse/static; Node.js 18+), and
#      Chromium for its test (Debian's package; installed only as root, like Java and Maven).
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '[setup] %s\n' "$*" >&2; }

# Debian packages for what is missing: command -> package.
missing=()
command -v java >/dev/null || missing+=(openjdk-17-jdk-headless)
command -v mvn >/dev/null || missing+=(maven)
command -v node >/dev/null || missing+=(nodejs)
command -v npm >/dev/null || missing+=(npm)
[ -x /usr/bin/chromium ] || missing+=(chromium)
if [ "${#missing[@]}" -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    say "installing ${missing[*]} with apt-get"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  elif ! command -v java >/dev/null || ! command -v mvn >/dev/null || ! command -v npm >/dev/null; then
    say "error: java, mvn and npm are needed (Java 17+, Apache Maven, Node.js 18+ with npm); install them and run again"
    exit 1
  else
    say "note: /usr/bin/chromium is missing (Debian package chromium): the test of kgrec browse is skipped"
  fi
fi

PY="${PYTHON:-}"
if [ -z "$PY" ]; then
  for cand in python3.11 python3.12 python3.13 python3; do
    if command -v "$cand" >/dev/null && "$cand" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
      PY="$cand"; break
    fi
  done
fi
[ -n "$PY" ] || { say "error: Python 3.11+ is needed"; exit 1; }

if [ ! -x .venv/bin/python ]; then
  say "creating .venv with $PY"
  "$PY" -m venv .venv
fi
if [ ! -x .venv/bin/uv ]; then
  .venv/bin/python -m pip install -q --disable-pip-version-check uv
fi

# Re-install only when pyproject.toml changed since the last successful install.
stamp=.venv/.kgrec-installed
want="$(sha256sum pyproject.toml | cut -d' ' -f1)"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  say "installing kgrec and its dependencies into .venv (uv; cached wheels are reused)"
  .venv/bin/uv pip install --python .venv/bin/python -q -e ".[all]"
  echo "$want" > "$stamp"
fi

.venv/bin/kgrec neo4j build >/dev/null

# The page of `kgrec browse`: rebuilt when its lock file, build script or sources changed.
web=kg/browse/web
want_web="$(cat "$web/package-lock.json" "$web/build.mjs" "$web"/src/* | sha256sum | cut -d' ' -f1)"
stamp_web=kg/browse/static/.kgrec-built
if [ ! -f "$stamp_web" ] || [ "$(cat "$stamp_web")" != "$want_web" ]; then
  say "building the page of kgrec browse (npm ci, esbuild)"
  (cd "$web" && npm ci --no-audit --no-fund --loglevel=error >/dev/null && node build.mjs)
  echo "$want_web" > "$stamp_web"
fi
say "ready: .venv/bin/kgrec"
