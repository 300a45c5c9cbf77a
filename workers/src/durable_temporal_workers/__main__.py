"""``python -m durable_temporal_workers``, same as ``temporal-workers``."""

from durable_temporal_workers.cli import run

if __name__ == "__main__":
    run()
