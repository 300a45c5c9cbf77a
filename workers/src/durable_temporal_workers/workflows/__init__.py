"""Workflows: deterministic orchestration code, run in the SDK's sandbox.

Each module imports activities, models and the registry inside
``workflow.unsafe.imports_passed_through()``, so the sandbox shares the
worker's loaded modules instead of re-importing them for every run.

Activity options. Workflows call activities with ``registry.execute(fn, arg)``,
which routes the call to the activity's task queue and passes no timeout or
retry policy. The worker fills them in from its config, by activity name
(``policies.ActivityPolicyInterceptor``), so operators tune them without a
code change:

- start-to-close: ``timeouts.activities.<name>``, else
  ``timeouts.activity_start_to_close_seconds`` (30 s);
- heartbeat: ``timeouts.activity_heartbeat_seconds`` (6 s); every async
  activity heartbeats while it runs, so a dead worker or a cancel is noticed
  within it;
- retry policy: ``retries.activities.<name>`` over ``retries.default``
  (5 attempts); compensations (refund, reverse_credit, cancel_*,
  refund_payment, cancel_shipment) retry without limit by default.

Replay matches scheduled activities by type and id, not by their options, so a
config change applies to activities scheduled after a restart and leaves
running workflows replayable. ``temporal-workers check-config`` prints the
effective values.

Strict input. Every workflow registered with ``registry.workflow`` decodes its
start input itself (``workflows/inputs``), against its run method's type hints
and the caps in ``models``. Left to the SDK, input that does not convert (not
JSON, a string for an int, a missing field) fails the workflow *task*, which
the server retries for ever: the workflow stays Running and the client never
learns why; and the SDK would let ``2.5`` pass as an int and ignore unknown
fields. Decoded strictly, bad input fails the workflow on its first task with
a non-retryable ``InvalidInput`` error that names each bad field, before any
activity runs. Update arguments get the same check with ``strict_update``.
"""
