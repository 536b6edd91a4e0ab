"""The worker-owned camera intake: the executor never takes its messages, the worker does.

In one process over real rclpy and DDS: a node spun by a SingleThreadedExecutor in a thread
(as mono_depth's main thread is) holds an intake subscription; messages published to it must
reach only ``take_newest``, which returns the newest and how many it took.
"""

from __future__ import annotations

import threading
import time

import pytest
import rclpy
from rclpy.executors import SingleThreadedExecutor
from rclpy.qos import QoSProfile, ReliabilityPolicy
from ros_harness import ros_session
from std_msgs.msg import String

from depth_perception.nodes.intake import WorkerIntake

pytestmark = pytest.mark.integration

QOS = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)


@pytest.fixture(scope="module")
def ros():
    yield from ros_session()


@pytest.fixture
def spun_node(ros):
    """A node spun by an executor in a thread; executor errors are collected."""
    node = rclpy.create_node("intake_test")
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    errors: list[BaseException] = []

    def spin() -> None:
        try:
            executor.spin()
        except BaseException as error:  # reported by the test
            errors.append(error)

    thread = threading.Thread(target=spin, daemon=True)
    thread.start()
    yield node, errors
    executor.shutdown()
    thread.join(timeout=5.0)
    node.destroy_node()


def _wait_for(condition, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_only_the_worker_takes_and_gets_the_newest(spun_node):
    node, errors = spun_node
    intake = WorkerIntake(node)
    subscription = intake.subscribe(String, "intake_topic", QOS, wait=True)
    publisher = node.create_publisher(String, "intake_topic", QOS)
    try:
        _wait_for(lambda: publisher.get_subscription_count() == 1, 10.0)
        assert intake.wait(timeout_s=0.05) is False  # nothing queued yet
        for index in range(5):
            publisher.publish(String(data=f"message {index}"))
        assert intake.wait(timeout_s=5.0) is True
        # All five are queued (reliable, depth 10) while the executor keeps spinning: give it
        # time to (wrongly) take some, then take them all at once.
        time.sleep(0.3)
        newest, taken = intake.take_newest(subscription)
        while taken < 5:  # DDS may still be delivering the last ones
            assert intake.wait(timeout_s=2.0)
            later, more = intake.take_newest(subscription)
            newest, taken = later or newest, taken + more
        assert (newest.data, taken) == ("message 4", 5)
        assert intake.take_newest(subscription) == (None, 0)
        assert errors == []  # the executor never ran the worker-owned subscription
    finally:
        node.destroy_publisher(publisher)
        intake.close()


def test_wake_ends_a_wait_early_and_close_removes_the_subscriptions(spun_node):
    node, errors = spun_node
    intake = WorkerIntake(node)
    intake.subscribe(String, "intake_idle", QOS, wait=True)
    intake.subscribe(String, "intake_side", QOS, wait=False)
    assert len(list(node.subscriptions)) == 2
    waker = threading.Timer(0.2, intake.wake)
    waker.start()
    start = time.monotonic()
    ready = intake.wait(timeout_s=10.0)
    waited = time.monotonic() - start
    waker.join()
    assert ready is False and waited < 5.0
    intake.close()
    assert list(node.subscriptions) == []
    assert errors == []
