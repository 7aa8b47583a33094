"""Where the runtime depends on Faust beyond its public API: the defects it works around and the
private attributes it reads, in one place, with the version they were checked against.

A new faust-streaming (or aiokafka) release must be checked against every entry below before it is
allowed: ``tests/unit/runtime/test_faust_compat.py`` fails while the installed version differs from
:data:`CHECKED`, and checks that every private attribute still exists; the worker logs a warning when
it runs on another version.

Defects worked around (faust-streaming 0.15.3):

- ``skip-then-commit`` — Faust can skip records of an input partition and still commit past them
  (records fetched and dropped during table recovery, no seek for a never-committed partition, jumps
  above the read offset taken as acknowledged gaps, older-generation records dropped). The agents read
  with ``acks=False`` and the worker admits only the next offset of each partition and commits itself:
  ``runtime/offsets.py``, ``runtime/reading.py``; tests ``tests/unit/runtime/test_offsets.py``,
  ``test_reread.py``, ``tests/integration/test_resilience.py``.
- ``flush-is-not-a-flush`` — ``ProducerBuffer.flush()`` returns after 100 ms without a send
  (``flush_atmost``), records still buffered, so a commit could pass undelivered state. The worker's
  ``DurableProducer`` awaits every record: ``runtime/producer.py``; test
  ``tests/integration/test_producer.py``.
- ``sasl-without-tls`` — ``faust.SASLCredentials`` without an ``ssl_context`` connects SASL_PLAINTEXT
  (the password in clear) and ``faust.SSLCredentials()`` without a context raises ``TypeError``: the
  credentials are built with a context: ``kafka/security.py``; tests ``tests/unit/kafka/test_security.py``,
  ``tests/integration/test_security.py``.
- ``web-bind`` — Faust binds its web server to ``web_bind`` (0.0.0.0 by default), not ``web_host``:
  ``runtime/web.py`` sets both; tests ``tests/unit/runtime/test_web.py``,
  ``tests/integration/test_web_security.py``.
- ``highwater-asserts`` — ``consumer.highwater(tp)`` asserts the partition is assigned, and it can move
  away while the ticker awaits: ``reading.highwater_of`` treats that as unknown.
- ``per-record-send`` — ``topic.send`` and ``table[key] = value`` cost 50-100 µs per record (a
  ``FutureMessage``, a coroutine, ``ProducerBuffer``), more than the customer logic: the customer stage
  writes rows to the tables' stores and sends their changelog records, actions and hand-overs as aiokafka
  record batches it awaits (``runtime/outgoing.py``; tests ``tests/integration/test_outgoing.py``, the
  kill -9 tests).
- ``per-record-stream`` — Faust's stream hands records over one by one (150-700 µs each): the batch
  consumer hands the agents one message per fetched partition batch (``runtime/batches.py``; tests
  ``tests/integration/test_resilience.py``: the kill -9 and two-worker tests).
- ``fetch-holds-requests`` - Faust's consumer lets the broker hold a fetch for 1,500 ms
  (``fetch_max_wait_ms``, not a setting), and a broker answers one request per connection at a time:
  every offset query, commit and seek waited up to 1.5 s behind an idle fetch (each partition's first
  batch took 1.5-3 s; an idle worker's timer ticks overlapped for 4-18 s). The batch consumer's thread
  sets 100 ms (``runtime/batches.py``, ``BROKER_FETCH_WAIT_MS``; test
  ``tests/unit/runtime/test_batches.py``; measured by ``orchestrator bench --only stages,lateness``).
- ``seek-across-threads`` - ``Consumer.seek`` calls aiokafka's ``seek`` from the main thread while
  the consumer's own thread may be listing and reading the fetched partitions
  (``Fetcher.fetched_records``): the seek deleted a partition's records in between and the fetch raised
  ``KeyError: TopicPartition(...)``, which stopped the worker (seen after a "records skipped: reading
  again" seek in the two-worker kill test). The batch consumer seeks in the consumer's thread, between
  two fetches (``runtime/batches.py``, ``BatchConsumer._seek``; test
  ``tests/unit/runtime/test_batches.py``; the re-read seeks of ``tests/integration/test_resilience.py``).
- ``seek-after-revoke`` - Faust's ``perform_seek`` (all assigned partitions back to their commits,
  when records come while the flow is stopped by a rebalance) raises aiokafka's ``IllegalStateError:
  No current assignment for partition`` when the next rebalance revokes one meanwhile, and the fetcher
  crashed, stopping the worker (seen in the two-worker kill test). The batch consumer catches it and
  seeks again at the next fetch (``runtime/batches.py``, ``BatchConsumer.seek_after_rebalance``; test
  ``tests/unit/runtime/test_batches.py``; ``tests/integration/test_resilience.py``, two workers).
- ``rocksdb-memory-per-database`` - Faust's RocksDB store gives every table partition's database its own
  block cache and memtables (``RocksDBOptions.as_options``; defaults 64 MB x 3 and 2 GB each, and the
  index and bloom filters beside the cache), so a worker's memory grew with its partitions and its
  data. The worker replaces each store's ``rocksdb_options`` so that every database shares one cache
  and one write buffer manager (``runtime/rocksdb_budget.py``; tests
  ``tests/unit/runtime/test_rocksdb_budget.py``, ``test_batches.py``; measured by
  ``orchestrator bench --only soak,held``).
- ``commit-without-metadata`` - Faust's ``Consumer._commit`` commits every offset with an empty
  metadata string, and its assignment reads only the offsets back. Ingest keeps its order times in its
  raw offsets' commit metadata (docs/runtime.md, design note of issue 17): the batch consumer commits
  those partitions itself, in the consumer's thread, and reads the metadata back from the group
  coordinator (``runtime/batches.py``: ``commit_with_metadata``, ``committed_metadata``; test
  ``tests/integration/test_order_times.py``).
- ``global-table-several-workers`` - a ``GlobalTable``'s partitions are actives on one worker and
  standbys on the others, and with several workers the others stop applying its changelog
  (faust-streaming#283, robinhood/faust#716). Ingest's copy of the identity writer's claims (the fast
  path, issue 17) is read by a plain aiokafka consumer without a group into a RocksDB database of its
  own (``runtime/claims_view.py``; tests ``tests/unit/runtime/test_claims.py``,
  ``tests/integration/test_fast_path.py``).
- ``debug-root-logger`` — ``faust.Worker`` at its default level installs a spinner handler and sets
  the root logger to DEBUG (a debug line per record): ``runtime/worker.py`` passes ``quiet=True`` and
  its own logging configuration (docs/performance.md, "Where Faust's per-event overhead comes from").
"""

from __future__ import annotations

import logging
from importlib.metadata import PackageNotFoundError, version
from typing import Any

__all__ = ["CHECKED", "PRIVATE_ATTRIBUTES", "installed_versions", "producer_client", "warn_if_unchecked"]

CHECKED: dict[str, str] = {"faust-streaming": "0.15.3", "aiokafka": "0.14.0"}
"""The versions every entry of this module was checked against."""

PRIVATE_ATTRIBUTES: tuple[tuple[str, str, str, str], ...] = (
    # (module, class, attribute, what the runtime does with it)
    ("faust.transport.consumer", "Consumer", "_commit", "commit what the worker decided"),
    ("faust.transport.consumer", "Consumer", "_committed_offset", "where reading starts"),
    ("faust.transport.consumer", "Consumer", "_read_offset", "the /partitions/ page"),
    ("faust.transport.consumer", "Consumer", "_active_partitions", "the /partitions/ page"),
    ("faust.transport.consumer", "Consumer", "_paused_partitions", "the /partitions/ page"),
    ("faust.tables.manager", "TableManager", "recovery", "no timers while tables recover"),
    ("faust.tables.recovery", "Recovery", "in_recovery", "no timers while tables recover"),
    ("faust.tables.recovery", "Recovery", "completed", "readiness after recovery"),
    ("faust.transport.producer", "ProducerBuffer", "flush_atmost", "the defect DurableProducer replaces"),
    ("aiokafka.consumer.consumer", "AIOKafkaConsumer", "_client", "cluster metadata (whole_topic)"),
    # the batch consumer (runtime/batches.py): Faust's fetch loop, replaced
    ("faust.transport.consumer", "Consumer", "_drain_messages", "replaced: one message per fetch"),
    ("faust.transport.consumer", "Consumer", "_wait_next_records", "the fetch"),
    ("faust.transport.consumer", "Consumer", "_buffered_partitions", "partitions paused by full queues"),
    ("faust.transport.consumer", "Consumer", "_get_active_partitions", "partitions not paused"),
    ("faust.transport.consumer", "Consumer", "_to_message", "the batch's stream message"),
    ("faust.transport.consumer", "Consumer", "_add_gap", "per-record rules of other topics"),
    ("faust.transport.consumer", "Consumer", "_commit_every", "per-record rules of other topics"),
    ("faust.transport.consumer", "Consumer", "_n_acked", "per-record rules of other topics"),
    ("mode.services", "Service", "_stopped", "the fetch loop's end"),
    ("faust.app.base", "App", "_new_transport", "the batch consumer installed"),
    ("faust.app.base", "App", "_new_producer", "the durable producer installed"),
    ("faust.transport.drivers.aiokafka", "Consumer", "_new_consumer_thread", "the consumer's thread"),
    ("faust.transport.consumer", "ThreadDelegateConsumer", "_seek", "replaced: seek in the thread"),
    ("faust.transport.consumer", "ThreadDelegateConsumer", "_thread", "replaced: seek in the thread"),
    ("mode.threads", "QueueServiceThread", "call_thread", "seek in the consumer's thread"),
    ("aiokafka.consumer.consumer", "AIOKafkaConsumer", "_coordinator", "committed offsets' metadata"),
    ("faust.transport.drivers.aiokafka", "AIOKafkaConsumerThread", "tp_last_committed_at", "as _commit"),
    ("aiokafka.consumer.group_coordinator", "GroupCoordinator", "fetch_committed_offsets", "their metadata"),
    ("faust.transport.drivers.aiokafka", "AIOKafkaConsumerThread", "_ensure_consumer", "seek in the thread"),
    ("faust.transport.drivers.aiokafka", "AIOKafkaConsumerThread", "_create_worker_consumer", "fetch wait"),
    ("aiokafka.consumer.consumer", "AIOKafkaConsumer", "_fetch_max_wait_ms", "fetch wait"),
    ("aiokafka.consumer.consumer", "AIOKafkaConsumer", "_fetch_min_bytes", "what a fetch gathers"),
    # batch writes (runtime/outgoing.py)
    ("faust.transport.drivers.aiokafka", "Producer", "_ensure_producer", "the aiokafka producer"),
    ("aiokafka.producer.producer", "AIOKafkaProducer", "_partition", "the partition topic.send gives"),
    ("aiokafka.client", "AIOKafkaClient", "_wait_on_metadata", "a topic's partitions before send_batch"),
    ("faust.stores.base", "Store", "_encode_key", "changelog keys as the table encodes them"),
    ("faust.stores.rocksdb", "Store", "_dbs", "RocksDB memory per table (metrics)"),
    ("faust.stores.rocksdb", "Store", "rocksdb_options", "replaced: one budget for every database"),
    ("faust.stores.rocksdb", "Store", "use_rocksdict", "the budget needs the rocksdict driver"),
)  # fmt: skip
"""Private attributes the runtime reads or calls: checked to exist by the unit test."""

log = logging.getLogger("orchestrator.worker")


def producer_client(app: Any) -> Any:
    """The aiokafka producer under Faust's (``Producer._ensure_producer``)."""
    return app.producer._ensure_producer()


def installed_versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for package in CHECKED:
        try:
            out[package] = version(package)
        except PackageNotFoundError:
            out[package] = None
    return out


def warn_if_unchecked() -> list[str]:
    """Log (and return) a warning for each package whose installed version was not checked."""
    warnings = [
        f"{package} {found} is installed; the runtime's Faust workarounds were checked against "
        f"{CHECKED[package]} (orchestrator/runtime/faust_compat.py)"
        for package, found in installed_versions().items()
        if found != CHECKED[package]
    ]
    for text in warnings:
        log.warning(text)
    return warnings
