"""validate_inputs helpers: run checks that raise, and hand ComfyUI the first message (it shows
that text to the user and runs nothing). One place, so every node reports errors the same way."""

from __future__ import annotations

import functools
import inspect
import math

import numpy as np
from comfy_api.latest import io

from ..search.pool import SearchError
from ..verifiers.base import VerifierError

CHECK_ERRORS = (SearchError, VerifierError)


def message(check, *args) -> str | None:
    """The error message of ``check(*args)``, or None when it passes."""
    try:
        check(*args)
    except CHECK_ERRORS as e:
        return str(e)
    return None


def first_error(*checks) -> bool | str:
    """``checks`` are ``(function, *args)`` tuples (None entries are skipped). True when every check
    passes, else the first message: the return value validate_inputs expects."""
    for check in checks:
        if check is not None:
            msg = message(*check)
            if msg:
                return msg
    return True


# ---- every widget input of every node: type, range, finiteness, choice ----------------------
#
# ComfyUI skips its own min/max and choice checks for the inputs a node's validate_inputs names (all
# of them when it takes **kwargs), converts NaN happily (float("nan") passes a min/max test) and does
# not check V3 combos; a literal null reaches execute unchanged. ``guard`` gives every node of the
# pack one checker over its schema: at validation for the values ComfyUI passes (None there means
# "linked", known only later), and again in execute, before any sampling, where None is a missing
# value.


def widget_problem(inp, value, resolved: bool, own: bool) -> str | None:
    """Why ``value`` does not fit the widget input ``inp`` (a comfy_api io.*.Input), or None.
    ``own``: the node's own validate_inputs checks this combo's choice with its own message (a
    loader explains where a missing file goes)."""
    name = inp.id
    if value is None:
        return f"{name} is missing (null): give it a value" if resolved and not inp.optional else None
    if isinstance(inp, io.Boolean.Input):
        return None if isinstance(value, bool) else f"{name} = {value!r}: must be true or false"
    if isinstance(inp, io.String.Input):
        return None if isinstance(value, str) else f"{name} = {value!r}: must be text"
    if isinstance(inp, io.Combo.Input):
        if own or value in (inp.options or []):
            return None
        shown = ", ".join(map(str, inp.options[:20])) + (" ..." if len(inp.options) > 20 else "")
        return f"{name} = {value!r} is not one of: {shown}"
    if isinstance(inp, (io.Int.Input, io.Float.Input)):
        integer = isinstance(inp, io.Int.Input)
        kinds = (int, np.integer) if integer else (int, float, np.integer, np.floating)
        if isinstance(value, bool) or not isinstance(value, kinds):
            return f"{name} = {value!r}: must be {'an integer' if integer else 'a number'}"
        if not math.isfinite(value):
            return f"{name} = {value!r}: must be a finite number"
        if inp.min is not None and value < inp.min:
            return f"{name} = {value!r}: smaller than min {inp.min}"
        if inp.max is not None and value > inp.max:
            return f"{name} = {value!r}: bigger than max {inp.max}"
    return None


def input_problems(node, values: dict, resolved: bool, own: frozenset = frozenset()) -> str | None:
    """The first problem among ``values`` (input id -> value) of ``node``'s widget inputs, or None."""
    for inp in node.define_schema().inputs:
        if inp.id in values and isinstance(inp, io.WidgetInput):
            problem = widget_problem(inp, values[inp.id], resolved, inp.id in own)
            if problem:
                return problem
    return None


def guard(node):
    """Give ``node`` (an io.ComfyNode class of this pack) the schema checks above, before its own
    validate_inputs and before its execute. Returns the node (guarded once, however often asked)."""
    if node.__dict__.get("_eacps_guarded"):
        return node
    node._eacps_guarded = True
    own_validate = node.__dict__.get("validate_inputs")
    own_fn = own_validate.__func__ if own_validate is not None else None
    own_sig = inspect.signature(own_fn) if own_fn else None
    own_names = frozenset(own_sig.parameters) - {"cls"} if own_sig else frozenset()
    takes_all = own_sig is not None and any(p.kind is p.VAR_KEYWORD for p in own_sig.parameters.values())

    def validate_inputs(cls, *args, **kwargs):
        values = dict(kwargs)
        if own_fn is not None and args:
            values.update(own_sig.bind_partial(cls, *args).arguments)
        problem = input_problems(cls, values, resolved=False, own=own_names)
        if problem:
            return problem
        if own_fn is None:
            return True
        passed = kwargs if takes_all else {k: v for k, v in kwargs.items() if k in own_names}
        verdict = own_fn(cls, *args, **passed)
        unknown = [inp.id for inp in cls.define_schema().inputs if isinstance(inp, io.Combo.Input)
                   and values.get(inp.id) is not None and values[inp.id] not in (inp.options or [])]
        if isinstance(verdict, str) and unknown and not verdict.startswith(tuple(unknown)):
            return f"{', '.join(unknown)}: {verdict}"  # name the input whose choice the message is about
        return verdict

    exec_fn = node.__dict__["execute"].__func__
    exec_sig = inspect.signature(exec_fn)

    def check_resolved(cls, args, kwargs):
        values = exec_sig.bind(cls, *args, **kwargs).arguments
        problem = input_problems(cls, values, resolved=True, own=own_names)
        if problem:
            raise SearchError(f"{node.__name__}: {problem}")

    if inspect.iscoroutinefunction(exec_fn):
        async def execute(cls, *args, **kwargs):
            check_resolved(cls, args, kwargs)
            return await exec_fn(cls, *args, **kwargs)
    else:
        def execute(cls, *args, **kwargs):
            check_resolved(cls, args, kwargs)
            return exec_fn(cls, *args, **kwargs)

    functools.update_wrapper(execute, exec_fn)
    execute.__signature__ = exec_sig
    node.validate_inputs = classmethod(validate_inputs)
    node.execute = classmethod(execute)
    return node
