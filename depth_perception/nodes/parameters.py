"""Declaring ROS parameters from the core's ``ParamSpec`` list, with ranges and reasons."""

from __future__ import annotations

from collections.abc import Iterable

from rcl_interfaces.msg import (
    FloatingPointRange,
    IntegerRange,
    ParameterDescriptor,
    ParameterType,
    SetParametersResult,
)
from rclpy.node import Node
from rclpy.parameter import Parameter

from depth_perception.config import PARAMETERS_BY_NAME, ParamSpec, validate_value


def descriptor_for(spec: ParamSpec) -> ParameterDescriptor:
    """A descriptor carrying the spec's description, range and allowed values."""
    descriptor = ParameterDescriptor(name=spec.name, description=spec.description)
    constraints = []
    if spec.choices:
        constraints.append("one of: " + ", ".join(spec.choices))
    if spec.needs_reconfigure:
        constraints.append("applied on the next configure transition")
    descriptor.additional_constraints = "; ".join(constraints)
    if spec.min_value is not None and spec.max_value is not None:
        if isinstance(spec.default, bool):
            pass
        elif isinstance(spec.default, int):
            descriptor.integer_range = [
                IntegerRange(from_value=int(spec.min_value), to_value=int(spec.max_value), step=1)
            ]
        else:
            descriptor.floating_point_range = [
                FloatingPointRange(
                    from_value=float(spec.min_value), to_value=float(spec.max_value), step=0.0
                )
            ]
    return descriptor


def declare_parameters(node: Node, specs: Iterable[ParamSpec]) -> None:
    """Declare every spec on ``node`` with its default and descriptor.

    A string array (a tuple default) is declared by type without a value: rclpy would type an
    empty list as a byte array. Read it with :func:`parameter_value`.
    """
    for spec in specs:
        descriptor = descriptor_for(spec)
        if isinstance(spec.default, tuple):
            descriptor.type = ParameterType.PARAMETER_STRING_ARRAY
            node.declare_parameter(spec.name, Parameter.Type.STRING_ARRAY, descriptor)
        else:
            node.declare_parameter(spec.name, spec.default, descriptor)


def parameter_value(node: Node, spec: ParamSpec) -> object:
    """The value of ``spec``'s parameter; a string array never set is its (empty) default."""
    value = node.get_parameter_or(spec.name).value
    if isinstance(spec.default, tuple):
        return tuple(value) if value is not None else spec.default
    return value


def validate_parameters(parameters: list[Parameter]) -> SetParametersResult:
    """Refuse any value the core would refuse, with the core's reason."""
    for parameter in parameters:
        if parameter.name not in PARAMETERS_BY_NAME:
            continue  # use_sim_time, qos_overrides.* and the like are rclpy's to check
        try:
            validate_value(parameter.name, parameter.value)
        except ValueError as error:
            return SetParametersResult(successful=False, reason=str(error))
    return SetParametersResult(successful=True)
