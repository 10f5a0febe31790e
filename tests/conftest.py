import os
from collections.abc import Iterator

import pytest
import torch

from tests.http_server import FileServer, serve_files

# Tests never touch the network: W&B offline, DVC without its analytics daemon.
os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("DVC_NO_ANALYTICS", "1")
# The Triton tests run the kernels through Triton's interpreter (CPU tensors). Triton
# reads TRITON_INTERPRET when a kernel module is first imported, and under xdist any
# earlier test may import it first: set it before any test module is imported.
os.environ.setdefault("TRITON_INTERPRET", "1")

# Under pytest-xdist (make test runs 2 workers on 2 cores) each worker, and every CLI
# subprocess it starts, gets one thread so the workers do not fight over the cores.
if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ["OMP_NUM_THREADS"] = "1"
    torch.set_num_threads(1)
else:
    torch.set_num_threads(min(2, torch.get_num_threads()))


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.fixture
def http_server() -> Iterator[FileServer]:
    """The one local HTTP server (127.0.0.1): files/root to serve, Range, failure modes.
    See tests/http_server.py for its API."""
    with serve_files() as server:
        yield server


def pytest_collection_modifyitems(config, items):
    """Start the long tests (marked ``slow``) first.

    Under ``make test`` (pytest-xdist, ``--dist worksteal``) the short tests then fill
    the other worker while the long ones run, instead of a 3-minute test starting last
    and leaving one core idle until it ends.
    """
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)
