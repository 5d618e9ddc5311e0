"""The ``tfaas`` command: ``tfaas serve`` runs the server; ``tfaas examples DIR`` writes the example models.

``tfaas serve`` takes TF Serving's flag names (``--model_name``, ``--model_base_path``,
``--model_config_file``, ``--rest_api_port``, ``--port``, ...). Flags of TF Serving that tfaas does not
have (``--enable_profiler``, say) are reported and ignored, as TF Serving itself does with unknown
arguments, so a TF Serving command line keeps working. With no model given, it serves the example
models, building them first if they are missing.
"""

from __future__ import annotations

import argparse
import dataclasses
import glob
import logging
import os
import subprocess
import sys
from pathlib import Path
from typing import MutableMapping, Sequence

from tfaas import __version__
from tfaas.config import Settings, add_arguments, load_settings
from tfaas.errors import ConfigError
from tfaas.logs import HeldRecords, log_native_lines

log = logging.getLogger("tfaas.cli")

EXAMPLE_MODELS = ("half_plus_two", "dense42")
"""The models ``tfaas.examples`` writes, served when no model is configured."""


def example_models_dir() -> Path:
    """Where the example models live: ``$TFAAS_EXAMPLES_DIR``, the checkout's ``examples/models``
    when running from a source checkout, else a per-user data directory."""
    if os.environ.get("TFAAS_EXAMPLES_DIR"):
        return Path(os.environ["TFAAS_EXAMPLES_DIR"]).expanduser().resolve()
    checkout = Path(__file__).resolve().parents[1]
    if (checkout / "setup.py").is_file() and (checkout / "examples").is_dir():
        return checkout / "examples" / "models"
    return Path.home() / ".local" / "share" / "tfaas" / "examples"


def ensure_example_models(root: Path) -> None:
    """Build the example models under ``root`` unless they are all there.

    NOTE: built in a child process, because importing TensorFlow in gunicorn's master would make
    the forked workers unsafe.
    """
    if all(any(p.name.isdigit() for p in (root / m).glob("*")) for m in EXAMPLE_MODELS):
        return
    log.info("Building the example models in %s", root)
    built = subprocess.run([sys.executable, "-m", "tfaas.examples", str(root)], stderr=subprocess.PIPE)
    output = built.stderr.decode(errors="replace")
    if built.returncode:
        log.error("Building the example models failed:\n%s", output)
        built.check_returncode()
    log_native_lines(logging.getLogger("tensorflow"), output)


def with_example_models(settings: Settings) -> Settings:
    """``settings`` serving the example models (for a plain ``tfaas serve``).

    The examples directory becomes the model repository, so every model in it is served and TFaaS's
    upload API adds models beside them.
    """
    root = example_models_dir()
    ensure_example_models(root)
    return dataclasses.replace(settings, model_repository=str(root))


def prepare_tensorflow(environ: MutableMapping[str, str] = os.environ) -> None:
    """Set what every TensorFlow started from here (workers, the example builder) must find in its
    environment before its import; an operator's own settings win.

    - ``TF_CPP_MIN_LOG_LEVEL=1``: TensorFlow's C++ INFO lines would drown our logs (warnings and
      errors still show).
    - ``TF_ENABLED_DEVICE_TYPES=CPU`` on a machine with no NVIDIA device file (``/dev/nvidia0``...),
      unless ``CUDA_VISIBLE_DEVICES`` is set: TensorFlow otherwise calls ``cuInit``, which fails there
      and logs an ERROR (``failed call to cuInit``) at every start; ``CUDA_VISIBLE_DEVICES`` does not
      keep it from calling.
    """
    environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")
    if "CUDA_VISIBLE_DEVICES" not in environ and not glob.glob("/dev/nvidia[0-9]*"):
        environ.setdefault("TF_ENABLED_DEVICE_TYPES", "CPU")


def build_parser() -> argparse.ArgumentParser:
    """The command line: ``serve`` (every option of ``tfaas.config``) and ``examples``."""
    parser = argparse.ArgumentParser(prog="tfaas", description=__doc__.split("\n")[0])
    parser.add_argument("--version", action="version", version=f"tfaas {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="serve models over HTTP and gRPC (TF Serving's APIs)")
    add_arguments(serve)
    examples = commands.add_parser("examples", help="write the example models to a directory")
    examples.add_argument("directory", nargs="?", help="default: where `tfaas serve` looks for them")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``tfaas`` console script."""
    held = HeldRecords.install()  # NOTE: until the settings say how lines look, even the first ones
    args, unknown = build_parser().parse_known_args(argv)
    if unknown:
        log.warning("Ignoring arguments tfaas does not know: %s", " ".join(unknown))
    prepare_tensorflow()
    try:
        settings = load_settings(args) if args.command == "serve" else Settings()
    except ConfigError as exc:
        held.replay("text", "info")
        print(f"tfaas: invalid configuration: {exc}", file=sys.stderr)
        return 2
    held.replay(settings.log_format, settings.log_level, settings.access_log)
    if args.command == "examples":
        ensure_example_models(Path(args.directory) if args.directory else example_models_dir())
        return 0
    if not settings.models and not settings.model_repository:
        settings = with_example_models(settings)
    from tfaas.server.gunicorn_app import serve  # NOTE: gunicorn only for the serve command

    serve(settings)
    return 0
