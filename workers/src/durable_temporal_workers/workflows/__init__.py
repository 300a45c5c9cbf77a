"""Workflows: deterministic orchestration code, run in the SDK's sandbox.

Each module imports activities, models and the registry inside
``workflow.unsafe.imports_passed_through()``, so the sandbox shares the
worker's loaded modules instead of re-importing them for every run.
"""
