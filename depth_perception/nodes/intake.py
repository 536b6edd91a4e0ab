"""Camera input that the node's worker thread waits on and takes itself, not the executor.

rclpy's executor rebuilds its wait set in Python on every wake-up, over every entity of the
node (the lifecycle and parameter services, timers, QoS event handlers of each publisher): in
mono_depth with every output that cost ~19 % of a core for a 60 Hz camera and its camera_info
(per-thread CPU of the node in ``depth-perception bench``), a third of the node's CPU per
frame, spent on the executor thread that also competes with the worker for the GIL. Here the
image and camera_info subscriptions belong to a callback group that no executor runs; the
worker waits on a small wait set of just those subscriptions and a wake-up guard condition,
and when it is ready for the next frame takes what is queued, keeping the newest message.

The wait set is rclpy's own (``_rclpy.WaitSet``, what ``rclpy.wait_for_message`` and the
executors use in Humble and Jazzy); everything else is public rclpy API.
"""

from __future__ import annotations

from contextlib import ExitStack
from typing import Any

from rclpy.callback_groups import CallbackGroup
from rclpy.guard_condition import GuardCondition
from rclpy.impl.implementation_singleton import rclpy_implementation as _rclpy
from rclpy.node import Node
from rclpy.qos import QoSProfile
from rclpy.subscription import Subscription


class WorkerOwnedGroup(CallbackGroup):
    """A callback group that no executor runs: its subscriptions are the worker's to take."""

    def can_execute(self, entity: Any) -> bool:
        return False

    def beginning_execution(self, entity: Any) -> bool:
        return False

    def ending_execution(self, entity: Any) -> None:
        pass


def _never_called(message: Any) -> None:  # pragma: no cover - no executor runs the group
    raise AssertionError("a worker-owned subscription was run by an executor")


class WorkerIntake:
    """Subscriptions that one thread (the worker) waits on and takes from.

    ``subscribe`` while the worker is stopped; then the worker alone calls ``wait`` and
    ``take_newest``; ``wake`` (any thread) ends a ``wait`` early, e.g. to stop the worker;
    ``close`` after the worker has stopped destroys the subscriptions.
    """

    def __init__(self, node: Node) -> None:
        self._node = node
        self.group = WorkerOwnedGroup()
        self._subscriptions: list[Subscription] = []
        self._waited: list[Subscription] = []
        # Not created through the node: the executor must not wait on it either.
        self._wake = GuardCondition(None, None, context=node.context)

    def subscribe(
        self, message_type: type, topic: str, qos: QoSProfile, *, wait: bool, **kwargs: Any
    ) -> Subscription:
        """A subscription of ``node`` that only this intake takes from.

        Args:
            wait: ``wait`` returns when this subscription has a message (camera images);
                without it, messages are only taken when asked (camera_info, taken with its
                image).
            kwargs: passed on to ``Node.create_subscription`` (e.g. qos_overriding_options).
        """
        subscription = self._node.create_subscription(
            message_type, topic, _never_called, qos, callback_group=self.group, **kwargs
        )
        self._subscriptions.append(subscription)
        if wait:
            self._waited.append(subscription)
        return subscription

    def wait(self, timeout_s: float) -> bool:
        """Block until a waited-on subscription has a message, ``wake`` or the timeout.

        Returns:
            True when a subscription is ready (its message may still be gone when taken).
        """
        context = self._node.context
        with ExitStack() as stack:
            for subscription in self._waited:
                stack.enter_context(subscription.handle)
            stack.enter_context(self._wake.handle)
            stack.enter_context(context.handle)
            wait_set = _rclpy.WaitSet(len(self._waited), 1, 0, 0, 0, 0, context.handle)
            wait_set.clear_entities()
            for subscription in self._waited:
                wait_set.add_subscription(subscription.handle)
            wait_set.add_guard_condition(self._wake.handle)
            wait_set.wait(int(timeout_s * 1e9))
            return bool(wait_set.get_ready_entities("subscription"))

    @staticmethod
    def take_newest(subscription: Subscription) -> tuple[Any | None, int]:
        """Take every queued message of ``subscription``.

        Returns:
            The newest message (None if none was queued) and how many were taken: the older
            ones are replaced, as a worker that only wants the latest frame would.
        """
        newest, taken = None, 0
        with subscription.handle:
            while True:
                result = subscription.handle.take_message(subscription.msg_type, False)
                if result is None:
                    return newest, taken
                newest, taken = result[0], taken + 1

    def wake(self) -> None:
        """End the worker's current ``wait`` now."""
        self._wake.trigger()

    def close(self) -> None:
        """Destroy the subscriptions (the worker must have stopped)."""
        for subscription in self._subscriptions:
            self._node.destroy_subscription(subscription)
        self._subscriptions = []
        self._waited = []
        self._wake.destroy()
