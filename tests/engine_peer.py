"""Where tests import the Docker engine peer from: :mod:`peers.engine`."""

from peers.engine import Engine, start_engine

__all__ = ["Engine", "start_engine"]
