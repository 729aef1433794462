"""Capture, first half: tweets from any source → Kafka topic `tweets`.

Key = tweet id, value = the normalized tweet JSON (`Tweet.to_json`). The producer is
idempotent (`enable.idempotence`, `acks=all`), compresses, counts delivery callbacks and
prints a progress line every few seconds. Input that is not a valid tweet is forwarded
as it came, so that the ingest job quarantines it with its reason: nothing is lost.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal

from ai_tweets.schema import MalformedInput, Tweet
from stackbase.settings import (
    KAFKA_ADMIN_USER,
    KAFKA_CONSUMER_USER,
    KAFKA_PRODUCER_USER,
    KAFKA_SASL_MECHANISM,
    Settings,
)

log = logging.getLogger(__name__)

TOPIC_PARTITIONS = 4


class KafkaUnavailable(RuntimeError):
    """The brokers did not answer in time; the message names them."""


@dataclass
class ProduceReport:
    sent: int = 0
    malformed_forwarded: int = 0
    delivered: int = 0
    failed: int = 0
    seconds: float = 0.0
    errors: list[str] = field(default_factory=list)

    @property
    def rate(self) -> float:
        return self.delivered / self.seconds if self.seconds else 0.0

    def line(self) -> str:
        return (f"sent {self.sent:,} (malformed forwarded {self.malformed_forwarded:,}), "
                f"delivered {self.delivered:,}, failed {self.failed:,}, "
                f"{self.rate:,.0f} tweets/s over {self.seconds:.1f} s")


Role = Literal["producer", "consumer"]


def client_config(settings: Settings, role: Role) -> dict[str, str]:
    """How a confluent-kafka client reaches the broker as `role`: the producer's account may
    create and write topics, the consumers' may read them (the broker's ACLs say so)."""
    config = {"bootstrap.servers": settings.kafka_bootstrap_servers,
              "security.protocol": settings.kafka_security_protocol}
    if settings.kafka_security_protocol.startswith("SASL"):
        user, password = _account(settings, role)
        config.update({"sasl.mechanism": KAFKA_SASL_MECHANISM, "sasl.username": user, "sasl.password": password})
    return config


def spark_options(settings: Settings) -> dict[str, str]:
    """The Kafka source's options for Spark (the consumers' account); Spark redacts them in plans."""
    options = {"kafka.bootstrap.servers": settings.kafka_bootstrap_servers,
               "kafka.security.protocol": settings.kafka_security_protocol}
    if settings.kafka_security_protocol.startswith("SASL"):
        user, password = _account(settings, "consumer")
        quoted = password.replace("\\", "\\\\").replace('"', '\\"')
        options.update({"kafka.sasl.mechanism": KAFKA_SASL_MECHANISM,
                        "kafka.sasl.jaas.config": "org.apache.kafka.common.security.scram.ScramLoginModule required "
                                                  f'username="{user}" password="{quoted}";'})
    return options


def _account(settings: Settings, role: Role) -> tuple[str, str]:
    user, field = ((KAFKA_PRODUCER_USER, "kafka_producer_password") if role == "producer"
                   else (KAFKA_CONSUMER_USER, "kafka_consumer_password"))
    return user, settings.require(field)


def admin_config(settings: Settings) -> dict[str, str]:
    """The broker's admin (PLAIN): for creating the accounts below, and for tests that delete records."""
    return {"bootstrap.servers": settings.kafka_bootstrap_servers,
            "security.protocol": settings.kafka_security_protocol, "sasl.mechanism": "PLAIN",
            "sasl.username": KAFKA_ADMIN_USER, "sasl.password": settings.require("kafka_admin_password")}


def provision_accounts(settings: Settings, timeout: float = 60) -> list[str]:
    """Create or update the producer's and the consumers' SCRAM accounts (passwords from the
    settings) and their ACLs: the producer may create, describe and write topics; the consumers
    may describe and read topics and use consumer groups. Nothing else is allowed to anyone but
    the admin (`allow.everyone.if.no.acl.found=false`). Idempotent; returns what it did."""
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import (
        AclBinding,
        AclOperation,
        AclPermissionType,
        AdminClient,
        ResourcePatternType,
        ResourceType,
        ScramCredentialInfo,
        ScramMechanism,
        UserScramCredentialUpsertion,
    )

    admin = AdminClient(admin_config(settings))
    accounts = {KAFKA_PRODUCER_USER: settings.require("kafka_producer_password"),
                KAFKA_CONSUMER_USER: settings.require("kafka_consumer_password")}
    info = ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, 8192)
    upserts = [UserScramCredentialUpsertion(user, info, password.encode()) for user, password in accounts.items()]
    grants = {KAFKA_PRODUCER_USER: [(ResourceType.TOPIC, op) for op in
                                    (AclOperation.CREATE, AclOperation.DESCRIBE, AclOperation.WRITE)],
              KAFKA_CONSUMER_USER: [(kind, op) for kind in (ResourceType.TOPIC, ResourceType.GROUP)
                                    for op in (AclOperation.DESCRIBE, AclOperation.READ)]}
    acls = [AclBinding(kind, "*", ResourcePatternType.LITERAL, f"User:{user}", "*", operation,
                       AclPermissionType.ALLOW)
            for user, rules in grants.items() for kind, operation in rules]
    try:
        for future in admin.alter_user_scram_credentials(upserts, request_timeout=timeout).values():
            future.result()
        for future in admin.create_acls(acls, request_timeout=timeout).values():
            future.result()
    except KafkaException as exc:
        raise KafkaUnavailable(f"Kafka at {settings.kafka_bootstrap_servers}: cannot create the pipeline's "
                               f"accounts ({exc}). Is KAFKA_ADMIN_PASSWORD the broker's?") from exc
    return [f"account {user} ({KAFKA_SASL_MECHANISM}) with {len(grants[user])} ACLs" for user in accounts]


def producer_config(settings: Settings) -> dict:
    return {
        **client_config(settings, "producer"),
        "enable.idempotence": True,  # implies acks=all and ordered, de-duplicated retries
        "acks": "all",
        "compression.type": "lz4",
        "linger.ms": 20,
        "batch.size": 1_000_000,
        "queue.buffering.max.messages": 500_000,
        "message.timeout.ms": 300_000,
        "client.id": "ai-tweets-capture",
    }


def ensure_topic(settings: Settings, partitions: int = TOPIC_PARTITIONS, timeout: float | None = None) -> None:
    """Create the tweets topic if missing (auto-creation would give it one partition), waiting
    for the broker at most `timeout` seconds (by default AI_TWEETS_SERVICE_WAIT_SECONDS)."""
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import AdminClient, NewTopic

    timeout = settings.service_wait_seconds if timeout is None else timeout
    admin = AdminClient(client_config(settings, "producer"))
    try:
        if settings.tweets_topic in admin.list_topics(timeout=timeout).topics:
            return
        futures = admin.create_topics([NewTopic(settings.tweets_topic, partitions, 1)])
        futures[settings.tweets_topic].result(timeout)
    except KafkaException as exc:
        if "TOPIC_ALREADY_EXISTS" in str(exc):
            return
        raise KafkaUnavailable(f"Kafka at {settings.kafka_bootstrap_servers}: cannot create topic "
                               f"{settings.tweets_topic!r} ({exc}). Is the stack up (`make status`)?"
                               ) from exc


def produce(items: Iterable[Tweet | MalformedInput], settings: Settings, max_tweets: int | None = None,
            max_seconds: float | None = None, stop: threading.Event | None = None,
            progress_every: float = 5.0, flush_timeout: float = 120.0) -> ProduceReport:
    """Send items until the source ends, `max_tweets` or `max_seconds` is reached, or `stop` is set."""
    from confluent_kafka import KafkaError, KafkaException, Producer

    ensure_topic(settings)
    report = ProduceReport()
    producer = Producer(producer_config(settings))

    def delivered(error, _message) -> None:
        if error is None:
            report.delivered += 1
        else:
            report.failed += 1
            if len(report.errors) < 20:
                report.errors.append(str(error))

    began = time.monotonic()
    next_progress = began + progress_every
    topic = settings.tweets_topic
    for item in items:
        if isinstance(item, Tweet):
            key, value = str(item.id).encode(), item.to_json()
        else:
            key, value = None, item.raw
            report.malformed_forwarded += 1
        while True:
            try:
                producer.produce(topic, key=key, value=value, on_delivery=delivered)
                break
            except BufferError:
                producer.poll(0.1)  # local queue full: let deliveries drain
            except KafkaException as exc:
                if exc.args[0].code() != KafkaError.MSG_SIZE_TOO_LARGE:
                    raise
                report.failed += 1
                report.errors.append(f"message of {len(value):,} bytes is larger than Kafka accepts")
                break
        report.sent += 1
        producer.poll(0)
        now = time.monotonic()
        if now >= next_progress:
            report.seconds = now - began
            log.info("capture progress: %s", report.line())
            next_progress = now + progress_every
        if (max_tweets is not None and report.sent >= max_tweets) or \
                (max_seconds is not None and now - began >= max_seconds) or (stop and stop.is_set()):
            break
    remaining = producer.flush(flush_timeout)
    report.seconds = time.monotonic() - began
    if remaining:
        raise KafkaUnavailable(
            f"Kafka at {settings.kafka_bootstrap_servers}: {remaining:,} messages not delivered after "
            f"{flush_timeout:.0f} s ({report.line()}). Is the broker up (`make status`)?")
    if report.failed:
        raise KafkaUnavailable(f"{report.failed:,} messages failed: {report.errors[:3]} ({report.line()})")
    log.info("capture done: %s", report.line())
    return report


def watermarks(settings: Settings, topic: str, timeout: float = 30) -> dict[int, tuple[int, int]]:
    """(earliest, next) offset of each partition of `topic`; {} if the topic does not exist."""
    from confluent_kafka import Consumer, KafkaException, TopicPartition

    consumer = Consumer({**client_config(settings, "consumer"), "group.id": "ai-tweets-watermarks",
                         "enable.auto.commit": False})
    try:
        topics = consumer.list_topics(topic, timeout=timeout).topics
        if topic not in topics or topics[topic].error is not None:
            return {}
        return {partition: consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=timeout)
                for partition in topics[topic].partitions}
    except KafkaException as exc:
        raise KafkaUnavailable(f"Kafka at {settings.kafka_bootstrap_servers}: cannot read the offsets of "
                               f"{topic!r} ({exc}). Is the stack up (`make status`)?") from exc
    finally:
        consumer.close()


def latest_values(settings: Settings, topic: str, count: int, timeout: float = 30) -> list[bytes]:
    """The values of the last `count` messages of `topic` (about as many from each partition),
    read without joining a consumer group or committing anything; [] if the topic is empty or
    does not exist."""
    from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition

    ends = watermarks(settings, topic, timeout)
    share = max(1, count // max(len(ends), 1))
    starts = {partition: max(low, high - share) for partition, (low, high) in ends.items() if high > low}
    if not starts:
        return []
    consumer = Consumer({**client_config(settings, "consumer"), "group.id": "ai-tweets-latest",
                         "enable.auto.commit": False, "enable.partition.eof": True})
    values: list[bytes] = []
    try:
        consumer.assign([TopicPartition(topic, partition, offset) for partition, offset in starts.items()])
        pending, deadline = set(starts), time.monotonic() + timeout
        while pending and time.monotonic() < deadline:
            message = consumer.poll(1.0)
            if message is None:
                continue
            error = message.error()
            if error is None:
                values.append(message.value())
            if (message.offset() + 1 >= ends[message.partition()][1] if error is None
                    else error.code() == KafkaError._PARTITION_EOF):
                pending.discard(message.partition())
    except KafkaException as exc:
        raise KafkaUnavailable(f"Kafka at {settings.kafka_bootstrap_servers}: cannot read {topic!r} ({exc})") from exc
    finally:
        consumer.close()
    return values[-count:]
