#!/bin/sh
# Container entry: serve on 0.0.0.0:8000 with an access token (given, or made here and printed).
set -eu
if [ -z "${ENTRODROP_TOKEN:-}" ]; then
  ENTRODROP_TOKEN=$(.venv/bin/python -c "import secrets; print(secrets.token_urlsafe(24))")
  export ENTRODROP_TOKEN
  echo "No ENTRODROP_TOKEN given; open http://127.0.0.1:8000/?token=${ENTRODROP_TOKEN}"
fi
exec .venv/bin/entrodrop serve --host 0.0.0.0 --port 8000 "$@"
