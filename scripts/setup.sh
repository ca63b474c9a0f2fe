#!/usr/bin/env bash
# Create or refresh everything kgrec needs on this machine; safe to run again (fast when done).
#   1. Java 17+ and Maven (installed with apt-get when missing and we are root);
#   2. the virtual environment .venv with uv and the project with all extras (torch, PyG,
#      PyKEEN, transformers, the offline MiniLM weights, neo4j driver, FastAPI, test tools);
#   3. the Java launcher for the local Neo4j and Neo4j's offline bulk importer (Maven builds into
#      kg/neo4j/launcher/target and kg/neo4j/importer/target).
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '[setup] %s\n' "$*" >&2; }

if ! command -v java >/dev/null || ! command -v mvn >/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    say "installing Java 17 and Maven with apt-get"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openjdk-17-jdk-headless maven >/dev/null
  else
    say "error: java and mvn are needed (Java 17+, Apache Maven); install them and run again"
    exit 1
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
say "ready: .venv/bin/kgrec"
