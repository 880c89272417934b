"""DynamoDB's expression language for the memory backend: update, condition and projection.

    ast = parse_update("SET #w = :seq ADD #v :n")      # pure, cached per text
    scope = Scope(names, values)                        # one request's placeholders
    check_update(ast, scope)                            # DynamoDB's validation errors
    new_item, touched = apply_update(ast, item, scope)

Supported: ``SET`` (with ``+``, ``-``, ``if_not_exists``, ``list_append``), ``REMOVE``, ``ADD``,
``DELETE``; conditions with ``AND``/``OR``/``NOT``, parentheses, ``= <> < <= > >=``,
``BETWEEN``, ``IN``, ``attribute_exists``, ``attribute_not_exists``, ``attribute_type``,
``begins_with``, ``contains`` and ``size``. Paths are top-level attributes; a nested path
(``a.b``, ``a[0]``) is refused with a ValidationException that says so.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from async_counters.local import values as v
from async_counters.local.reserved import RESERVED_WORDS

_TOKEN: Final = re.compile(
    r"""
     (?P<space>\s+)
    |(?P<name>\#[A-Za-z0-9_]+)
    |(?P<value>:[A-Za-z0-9_]+)
    |(?P<ident>[A-Za-z_][A-Za-z0-9_]*)
    |(?P<number>[0-9]+)
    |(?P<op><>|<=|>=|[=<>(),.\[\]+\-])
    """,
    re.VERBOSE,
)
_COMPARATORS: Final = frozenset({"=", "<>", "<", "<=", ">", ">="})
_CONDITION_FUNCTIONS: Final = frozenset(
    {"attribute_exists", "attribute_not_exists", "attribute_type", "begins_with", "contains"}
)
_UPDATE_FUNCTIONS: Final = frozenset({"if_not_exists", "list_append"})
_CLAUSES: Final = ("SET", "REMOVE", "ADD", "DELETE")
_TYPE_TAGS: Final = frozenset(v.ALL_TYPES)
_CACHE_SIZE: Final = 1024


class InvalidExpression(Exception):
    """An expression DynamoDB refuses; the message is DynamoDB's, without the
    ``Invalid UpdateExpression:`` prefix (the caller knows which expression it was)."""


class NotSupported(Exception):
    """Valid DynamoDB the memory backend does not model (nested paths, for one)."""


# The syntax tree. Names and values stay placeholders until a request's Scope resolves them.


@dataclass(frozen=True, slots=True)
class Path:
    token: str  # "count" or "#v"

    def __str__(self) -> str:
        return self.token


@dataclass(frozen=True, slots=True)
class Value:
    token: str  # ":n"


@dataclass(frozen=True, slots=True)
class Size:
    path: Path


@dataclass(frozen=True, slots=True)
class IfNotExists:
    path: Path
    default: Operand


@dataclass(frozen=True, slots=True)
class ListAppend:
    first: Operand
    second: Operand


@dataclass(frozen=True, slots=True)
class Arithmetic:
    operator: str  # "+" or "-"
    left: Operand
    right: Operand


Operand = Path | Value | Size | IfNotExists | ListAppend | Arithmetic


@dataclass(frozen=True, slots=True)
class Compare:
    operator: str
    left: Operand
    right: Operand


@dataclass(frozen=True, slots=True)
class Between:
    subject: Operand
    low: Operand
    high: Operand


@dataclass(frozen=True, slots=True)
class In:
    subject: Operand
    options: tuple[Operand, ...]


@dataclass(frozen=True, slots=True)
class Function:
    name: str
    arguments: tuple[Operand, ...]


@dataclass(frozen=True, slots=True)
class And:
    left: Condition
    right: Condition


@dataclass(frozen=True, slots=True)
class Or:
    left: Condition
    right: Condition


@dataclass(frozen=True, slots=True)
class Not:
    inner: Condition


Condition = Compare | Between | In | Function | And | Or | Not


@dataclass(frozen=True, slots=True)
class Action:
    clause: str  # SET, REMOVE, ADD, DELETE
    path: Path
    value: Operand | None = None


@dataclass(frozen=True, slots=True)
class Update:
    actions: tuple[Action, ...]


@dataclass(frozen=True, slots=True)
class _Token:
    kind: str  # name, value, ident, number, op, eof
    text: str
    start: int
    end: int


# Parsing.


def _tokenize(text: str) -> list[_Token]:
    tokens: list[_Token] = []
    position = 0
    while position < len(text):
        match = _TOKEN.match(text, position)
        if match is None:
            bad = _Token("op", text[position], position, position + 1)
            raise InvalidExpression(
                f'Syntax error; token: "{bad.text}", near: "{_near(text, tokens, bad)}"'
            )
        kind = match.lastgroup or "op"
        if kind != "space":
            tokens.append(_Token(kind, match.group(), match.start(), match.end()))
        position = match.end()
    tokens.append(_Token("eof", "<EOF>", len(text), len(text)))
    return tokens


def _near(text: str, before: list[_Token], token: _Token, after: _Token | None = None) -> str:
    start = before[-1].start if before else token.start
    end = after.end if after is not None and after.kind != "eof" else token.end
    return text[start:end]


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = _tokenize(text)
        self.position = 0

    def peek(self, offset: int = 0) -> _Token:
        return self.tokens[min(self.position + offset, len(self.tokens) - 1)]

    def take(self) -> _Token:
        token = self.tokens[self.position]
        if token.kind != "eof":
            self.position += 1
        return token

    def keyword(self, *words: str) -> bool:
        token = self.peek()
        return token.kind == "ident" and token.text.upper() in words

    def expect(self, text: str) -> _Token:
        token = self.peek()
        if token.text != text:
            raise self.error(token)
        return self.take()

    def error(self, token: _Token | None = None) -> InvalidExpression:
        token = token or self.peek()
        index = self.tokens.index(token)
        after = self.tokens[index + 1] if index + 1 < len(self.tokens) else None
        near = _near(self.text, self.tokens[:index], token, after)
        return InvalidExpression(f'Syntax error; token: "{token.text}", near: "{near}"')

    def end(self) -> None:
        if self.peek().kind != "eof":
            raise self.error()

    # Operands.

    def path(self) -> Path:
        token = self.peek()
        if token.kind not in ("ident", "name"):
            raise self.error(token)
        self.take()
        following = self.peek()
        if following.text in (".", "["):
            raise NotSupported(
                "The memory backend supports top-level attribute paths only; "
                f"use the moto backend for nested paths like {token.text}{following.text}..."
            )
        return Path(token.text)

    def operand(self, *, update: bool) -> Operand:
        token = self.peek()
        if token.kind == "value":
            self.take()
            return Value(token.text)
        if token.kind == "ident" and self.peek(1).text == "(":
            return self.function_operand(update=update)
        if token.kind in ("ident", "name"):
            return self.path()
        raise self.error(token)

    def function_operand(self, *, update: bool) -> Operand:
        token = self.take()
        name = token.text
        allowed = _UPDATE_FUNCTIONS if update else frozenset({"size"})
        if name not in allowed:
            if name in _CONDITION_FUNCTIONS | _UPDATE_FUNCTIONS | {"size"}:
                raise InvalidExpression(
                    "The function is not allowed to be used this way in an expression; "
                    f"function: {name}"
                )
            raise InvalidExpression(f"Invalid function name; function: {name}")
        self.expect("(")
        if name == "size":
            path = self.path()
            self.expect(")")
            return Size(path)
        if name == "if_not_exists":
            path = self.path()
            self.expect(",")
            default = self.value_expression()
            self.expect(")")
            return IfNotExists(path, default)
        first = self.value_expression()
        self.expect(",")
        second = self.value_expression()
        self.expect(")")
        return ListAppend(first, second)

    def value_expression(self) -> Operand:
        """A SET right-hand side: an operand, or two joined by + or -."""
        left = self.operand(update=True)
        if self.peek().text in ("+", "-"):
            operator = self.take().text
            right = self.operand(update=True)
            if self.peek().text in ("+", "-"):
                raise self.error()
            return Arithmetic(operator, left, right)
        return left

    # Conditions.

    def condition(self) -> Condition:
        left = self.conjunction()
        while self.keyword("OR"):
            self.take()
            left = Or(left, self.conjunction())
        return left

    def conjunction(self) -> Condition:
        left = self.negation()
        while self.keyword("AND"):
            self.take()
            left = And(left, self.negation())
        return left

    def negation(self) -> Condition:
        if self.keyword("NOT"):
            self.take()
            return Not(self.negation())
        return self.predicate()

    def predicate(self) -> Condition:
        token = self.peek()
        if token.text == "(":
            self.take()
            inner = self.condition()
            self.expect(")")
            return inner
        if (
            token.kind == "ident"
            and self.peek(1).text == "("
            and token.text in _CONDITION_FUNCTIONS
        ):
            self.take()
            self.expect("(")
            arguments = [self.operand(update=False)]
            while self.peek().text == ",":
                self.take()
                arguments.append(self.operand(update=False))
            self.expect(")")
            return self.function(token.text, tuple(arguments))
        subject = self.operand(update=False)
        following = self.peek()
        if following.text in _COMPARATORS:
            self.take()
            return Compare(following.text, subject, self.operand(update=False))
        if self.keyword("BETWEEN"):
            self.take()
            low = self.operand(update=False)
            if not self.keyword("AND"):
                raise self.error()
            self.take()
            return Between(subject, low, self.operand(update=False))
        if self.keyword("IN"):
            self.take()
            self.expect("(")
            options = [self.operand(update=False)]
            while self.peek().text == ",":
                self.take()
                options.append(self.operand(update=False))
            self.expect(")")
            if len(options) > 100:
                raise InvalidExpression(
                    "The IN operator is provided with too many operands; number of operands: "
                    f"{len(options)}"
                )
            return In(subject, tuple(options))
        raise self.error(following)

    @staticmethod
    def function(name: str, arguments: tuple[Operand, ...]) -> Function:
        arity = {
            "attribute_exists": 1,
            "attribute_not_exists": 1,
            "attribute_type": 2,
            "begins_with": 2,
            "contains": 2,
        }[name]
        if len(arguments) != arity:
            raise InvalidExpression(
                f"Incorrect number of operands for operator or function; operator or function: "
                f"{name}, number of operands: {len(arguments)}"
            )
        if name in ("attribute_exists", "attribute_not_exists", "attribute_type") and not (
            isinstance(arguments[0], Path)
        ):
            raise InvalidExpression(
                "Operator or function requires a document path; operator or function: " + name
            )
        return Function(name, arguments)

    # Update expressions.

    def update(self) -> Update:
        actions: list[Action] = []
        seen: set[str] = set()
        if self.peek().kind == "eof":
            raise self.error()
        while self.peek().kind != "eof":
            token = self.peek()
            clause = token.text.upper()
            if token.kind != "ident" or clause not in _CLAUSES:
                raise self.error(token)
            if clause in seen:
                raise InvalidExpression(
                    f'The "{clause}" section can only be used once in an update expression;'
                )
            seen.add(clause)
            self.take()
            while True:
                actions.append(self.action(clause))
                if self.peek().text != ",":
                    break
                self.take()
        return Update(tuple(actions))

    def action(self, clause: str) -> Action:
        path = self.path()
        if clause == "SET":
            self.expect("=")
            return Action(clause, path, self.value_expression())
        if clause == "REMOVE":
            return Action(clause, path)
        token = self.peek()
        if token.kind != "value":
            raise self.error(token)
        self.take()
        return Action(clause, path, Value(token.text))


@functools.lru_cache(maxsize=_CACHE_SIZE)
def parse_update(text: str) -> Update:
    """The syntax tree of an UpdateExpression (cached)."""
    parser = _Parser(text)
    update = parser.update()
    parser.end()
    return update


@functools.lru_cache(maxsize=_CACHE_SIZE)
def parse_condition(text: str) -> Condition:
    """The syntax tree of a ConditionExpression (cached)."""
    parser = _Parser(text)
    if parser.peek().kind == "eof":
        raise parser.error()
    condition = parser.condition()
    parser.end()
    return condition


@functools.lru_cache(maxsize=_CACHE_SIZE)
def parse_projection(text: str) -> tuple[Path, ...]:
    """The paths of a ProjectionExpression (cached)."""
    parser = _Parser(text)
    paths = [parser.path()]
    while parser.peek().text == ",":
        parser.take()
        paths.append(parser.path())
    parser.end()
    return tuple(paths)


# One request's placeholders.


@dataclass(slots=True)
class Scope:
    """ExpressionAttributeNames and -Values of one request, and which of them were used."""

    names: Mapping[str, str]
    values: Mapping[str, v.AttributeValue]
    used_names: set[str] = field(default_factory=set)
    used_values: set[str] = field(default_factory=set)

    def name(self, path: Path) -> str:
        token = path.token
        if token.startswith("#"):
            try:
                resolved = self.names[token]
            except KeyError:
                raise InvalidExpression(
                    "An expression attribute name used in the document path is not defined; "
                    f"attribute name: {token}"
                ) from None
            self.used_names.add(token)
            return resolved
        if token.upper() in RESERVED_WORDS:
            raise InvalidExpression(
                f"Attribute name is a reserved keyword; reserved keyword: {token}"
            )
        return token

    def value(self, value: Value) -> v.AttributeValue:
        try:
            found = self.values[value.token]
        except KeyError:
            raise InvalidExpression(
                "An expression attribute value used in expression is not defined; "
                f"attribute value: {value.token}"
            ) from None
        self.used_values.add(value.token)
        return found


def _operands(node: Operand) -> Iterator[Path | Value]:
    if isinstance(node, Path | Value):
        yield node
    elif isinstance(node, Size):
        yield node.path
    elif isinstance(node, IfNotExists):
        yield node.path
        yield from _operands(node.default)
    elif isinstance(node, ListAppend):
        yield from _operands(node.first)
        yield from _operands(node.second)
    else:
        yield from _operands(node.left)
        yield from _operands(node.right)


def _resolve(node: Operand, scope: Scope) -> None:
    for leaf in _operands(node):
        if isinstance(leaf, Path):
            scope.name(leaf)
        else:
            scope.value(leaf)


def check_update(update: Update, scope: Scope) -> list[str]:
    """Resolve every placeholder and check what DynamoDB checks before reading the item.

    Returns the attribute names the actions target, in order.
    """
    targets: list[str] = []
    for action in update.actions:
        targets.append(scope.name(action.path))
        if action.value is not None:
            _resolve(action.value, scope)
    for action in update.actions:
        if action.clause in ("ADD", "DELETE"):
            assert isinstance(action.value, Value)
            tag = v.type_of(scope.value(action.value))
            allowed = ("N", "SS", "NS", "BS") if action.clause == "ADD" else ("SS", "NS", "BS")
            if tag not in allowed:
                raise InvalidExpression(
                    "Incorrect operand type for operator or function; operator: "
                    f"{action.clause}, operand type: {v.TYPE_NAMES[tag]}, typeSet: "
                    f"ALLOWED_FOR_{action.clause}_OPERAND"
                )
    seen: dict[str, str] = {}
    for name in targets:
        if name in seen:
            raise InvalidExpression(
                "Two document paths overlap with each other; must remove or rewrite one of "
                f"these paths; path one: [{name}], path two: [{name}]"
            )
        seen[name] = name
    return targets


def check_condition(condition: Condition, scope: Scope) -> None:
    """Resolve every placeholder of a condition and check its operands."""
    if isinstance(condition, And | Or):
        check_condition(condition.left, scope)
        check_condition(condition.right, scope)
    elif isinstance(condition, Not):
        check_condition(condition.inner, scope)
    elif isinstance(condition, Compare):
        _resolve(condition.left, scope)
        _resolve(condition.right, scope)
        if condition.left == condition.right:
            raise InvalidExpression(
                "The first operand must be distinct from the remaining operands for this operator "
                f"or function; operator: {condition.operator}, first operand: "
                f"{_describe(condition.left, scope)}"
            )
    elif isinstance(condition, Between):
        for operand in (condition.subject, condition.low, condition.high):
            _resolve(operand, scope)
        low, high = _static(condition.low, scope), _static(condition.high, scope)
        if low is not None and high is not None and (v.compare(low, high) or 0) > 0:
            raise InvalidExpression(
                "The BETWEEN operator requires upper bound to be greater than or equal to lower "
                f"bound; lower bound operand: AttributeValue: {_show(low)}, upper bound operand: "
                f"AttributeValue: {_show(high)}"
            )
    elif isinstance(condition, In):
        _resolve(condition.subject, scope)
        for option in condition.options:
            _resolve(option, scope)
    else:
        for argument in condition.arguments:
            _resolve(argument, scope)
        if condition.name == "attribute_type":
            second = _static(condition.arguments[1], scope)
            if second is None or v.type_of(second) != "S" or second["S"] not in _TYPE_TAGS:
                raise InvalidExpression(
                    "Invalid attribute type name found; type: "
                    f"{second['S'] if second and 'S' in second else second}, valid types: "
                    "{B,NULL,SS,BOOL,L,BS,N,NS,S,M}"
                )


def _static(node: Operand, scope: Scope) -> v.AttributeValue | None:
    return scope.value(node) if isinstance(node, Value) else None


def _describe(node: Operand, scope: Scope) -> str:
    if isinstance(node, Path):
        return f"[{scope.name(node)}]"
    if isinstance(node, Value):
        return f"AttributeValue: {_show(scope.value(node))}"
    return type(node).__name__


def _show(value: v.AttributeValue) -> str:
    tag = v.type_of(value)
    return f"{{{tag}:{value[tag]}}}"


def projection_names(paths: tuple[Path, ...], scope: Scope) -> list[str]:
    """The attribute names a projection selects, placeholders resolved."""
    return [scope.name(path) for path in paths]


# Evaluation against an item.


class OperandError(Exception):
    """A runtime refusal with DynamoDB's full message (no expression prefix)."""


def evaluate(node: Operand, item: Mapping[str, v.AttributeValue], scope: Scope) -> Any:
    """The value of an operand on ``item``, or None for a missing attribute."""
    if isinstance(node, Path):
        return item.get(scope.name(node))
    if isinstance(node, Value):
        return scope.value(node)
    if isinstance(node, Size):
        found = item.get(scope.name(node.path))
        return None if found is None else _size(found)
    if isinstance(node, IfNotExists):
        found = item.get(scope.name(node.path))
        return found if found is not None else _required(node.default, item, scope)
    if isinstance(node, ListAppend):
        first = _required(node.first, item, scope)
        second = _required(node.second, item, scope)
        if v.type_of(first) != "L" or v.type_of(second) != "L":
            raise OperandError("An operand in the update expression has an incorrect data type")
        return {"L": [*first["L"], *second["L"]]}
    left = _required(node.left, item, scope)
    right = _required(node.right, item, scope)
    if v.type_of(left) != "N" or v.type_of(right) != "N":
        raise OperandError("An operand in the update expression has an incorrect data type")
    a, b = v.number_value(left), v.number_value(right)
    try:
        result = v.add_numbers(a, b) if node.operator == "+" else v.subtract_numbers(a, b)
    except v.InvalidValue as exc:
        raise OperandError(str(exc)) from None
    return {"N": v.format_number(result)}


def _required(node: Operand, item: Mapping[str, v.AttributeValue], scope: Scope) -> Any:
    found = evaluate(node, item, scope)
    if found is None:
        raise OperandError(
            "The provided expression refers to an attribute that does not exist in the item"
        )
    return found


def _size(value: v.AttributeValue) -> v.AttributeValue | None:
    tag = v.type_of(value)
    inner = value[tag]
    if tag == "S":
        return {"N": str(len(inner.encode()))}
    if tag == "B":
        return {"N": str(len(v.decode_binary(inner)))}
    if tag in ("SS", "NS", "BS", "L", "M"):
        return {"N": str(len(inner))}
    return None


def matches(condition: Condition, item: Mapping[str, v.AttributeValue], scope: Scope) -> bool:
    """Whether ``item`` (empty if absent) satisfies ``condition``."""
    if isinstance(condition, And):
        return matches(condition.left, item, scope) and matches(condition.right, item, scope)
    if isinstance(condition, Or):
        return matches(condition.left, item, scope) or matches(condition.right, item, scope)
    if isinstance(condition, Not):
        return not matches(condition.inner, item, scope)
    if isinstance(condition, Compare):
        left = evaluate(condition.left, item, scope)
        right = evaluate(condition.right, item, scope)
        if condition.operator == "=":
            return left is not None and right is not None and v.equal(left, right)
        if condition.operator == "<>":
            return left is None or right is None or not v.equal(left, right)
        if left is None or right is None:
            return False
        order = v.compare(left, right)
        if order is None:
            return False
        return {"<": order < 0, "<=": order <= 0, ">": order > 0, ">=": order >= 0}[
            condition.operator
        ]
    if isinstance(condition, Between):
        subject = evaluate(condition.subject, item, scope)
        low = evaluate(condition.low, item, scope)
        high = evaluate(condition.high, item, scope)
        if subject is None or low is None or high is None:
            return False
        above, below = v.compare(subject, low), v.compare(subject, high)
        return above is not None and below is not None and above >= 0 and below <= 0
    if isinstance(condition, In):
        subject = evaluate(condition.subject, item, scope)
        return subject is not None and any(
            (option := evaluate(o, item, scope)) is not None and v.equal(subject, option)
            for o in condition.options
        )
    return _function(condition, item, scope)


def _function(call: Function, item: Mapping[str, v.AttributeValue], scope: Scope) -> bool:
    first = evaluate(call.arguments[0], item, scope)
    if call.name == "attribute_exists":
        return first is not None
    if call.name == "attribute_not_exists":
        return first is None
    second = evaluate(call.arguments[1], item, scope)
    if first is None or second is None:
        return False
    if call.name == "attribute_type":
        return bool(v.type_of(first) == second["S"])
    first_tag, second_tag = v.type_of(first), v.type_of(second)
    if call.name == "begins_with":
        if first_tag != second_tag or first_tag not in ("S", "B"):
            return False
        if first_tag == "S":
            return bool(first["S"].startswith(second["S"]))
        return v.decode_binary(first["B"]).startswith(v.decode_binary(second["B"]))
    # contains: a substring of a string, a member of a set or a list.
    if first_tag == "S" and second_tag == "S":
        return bool(second["S"] in first["S"])
    if first_tag == "B" and second_tag == "B":
        return v.decode_binary(second["B"]) in v.decode_binary(first["B"])
    if first_tag in ("SS", "NS", "BS") and second_tag == first_tag[0]:
        return any(v.equal({second_tag: x}, second) for x in first[first_tag])
    if first_tag == "L":
        return any(v.equal(element, second) for element in first["L"])
    return False


def apply_update(
    update: Update, item: Mapping[str, v.AttributeValue], scope: Scope
) -> dict[str, v.AttributeValue]:
    """The item after ``update``; every operand is read from the item as it was before."""
    new = dict(item)
    for action in update.actions:
        name = scope.name(action.path)
        if action.clause == "SET":
            assert action.value is not None
            new[name] = v.canonical(_required(action.value, item, scope))
        elif action.clause == "REMOVE":
            new.pop(name, None)
        else:
            assert isinstance(action.value, Value)
            operand = scope.value(action.value)
            existing = item.get(name)
            result = (
                _add(existing, operand) if action.clause == "ADD" else _delete(existing, operand)
            )
            if result is None:
                new.pop(name, None)
            else:
                new[name] = result
    return new


def _add(existing: v.AttributeValue | None, operand: v.AttributeValue) -> v.AttributeValue:
    tag = v.type_of(operand)
    if existing is None:
        return v.canonical(operand)
    if v.type_of(existing) != tag:
        raise OperandError("An operand in the update expression has an incorrect data type")
    if tag == "N":
        try:
            total = v.add_numbers(v.number_value(existing), v.number_value(operand))
        except v.InvalidValue as exc:
            raise OperandError(str(exc)) from None
        return {"N": v.format_number(total)}
    return v.canonical({tag: [*existing[tag], *operand[tag]]})


def _delete(
    existing: v.AttributeValue | None, operand: v.AttributeValue
) -> v.AttributeValue | None:
    if existing is None:
        return None
    tag = v.type_of(operand)
    if v.type_of(existing) != tag:
        raise OperandError("An operand in the update expression has an incorrect data type")
    removed = {v.format_number(v.parse_number(x)) if tag == "NS" else x for x in operand[tag]}
    kept = [
        x
        for x in existing[tag]
        if (v.format_number(v.parse_number(x)) if tag == "NS" else x) not in removed
    ]
    return {tag: kept} if kept else None
