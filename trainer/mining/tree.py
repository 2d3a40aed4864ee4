"""Drain's fixed-depth prefix tree (He et al., ICWS 2017): token count, then the leading
tokens, then a leaf holding the templates to compare a line with.

A template is filed once, under the route its first line took, and never moves. Routes are
kept with the templates, so a loaded set rebuilds the very same tree.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Generic, TypeVar

from trainer.mining.tokens import PARAM, is_variable

T = TypeVar("T")


class _Node(Generic[T]):
    __slots__ = ("children", "items")

    def __init__(self) -> None:
        self.children: dict[str, _Node[T]] = {}
        self.items: list[T] = []


class PrefixTree(Generic[T]):
    """Routes token lists to leaves. `depth` counts as Drain does: the root, the token-count
    level and the leaf level, so `depth - 3` leading tokens pick the path."""

    def __init__(self, depth: int, max_children: int) -> None:
        self.prefix = depth - 3
        self.max_children = max_children
        self._root: _Node[T] = _Node()

    def _keys(self, tokens: Sequence[str]) -> Sequence[str]:
        # Drain never routes on the last token: a one-token line goes by its length alone.
        return tokens[: min(self.prefix, len(tokens) - 1)]

    def leaves(self, tokens: Sequence[str]) -> list[list[T]]:
        """Every leaf a line may find its template in: at each level both the child of its
        own token and the `<*>` child. Both, because a template filed under `<*>` must stay
        findable after a later line gives the same token a child of its own."""
        node = self._root.children.get(str(len(tokens)))
        if node is None:
            return []
        nodes = [node]
        for token in self._keys(tokens):
            below: list[_Node[T]] = []
            for n in nodes:
                child = n.children.get(token)
                if child is not None:
                    below.append(child)
                if token != PARAM:
                    child = n.children.get(PARAM)
                    if child is not None:
                        below.append(child)
            if not below:
                return []
            nodes = below
        return [n.items for n in nodes if n.items]

    def route(self, tokens: Sequence[str]) -> tuple[str, ...]:
        """Where a new template from `tokens` goes: an existing child of the same token, else
        a new child, else (a variable-looking token, or a full node) the `<*>` child."""
        route = [str(len(tokens))]
        node: _Node[T] | None = self._root.children.get(route[0])
        for token in self._keys(tokens):
            children = node.children if node is not None else {}
            if token in children:
                key = token
            elif is_variable(token) or len(children) >= self.max_children - 1:
                # One slot stays free for `<*>`, so a full node always has it.
                key = PARAM
            else:
                key = token
            route.append(key)
            node = children.get(key)
        return tuple(route)

    def insert(self, route: Sequence[str], item: T) -> None:
        node = self._root
        for key in route:
            child = node.children.get(key)
            if child is None:
                child = node.children[key] = _Node()
            node = child
        node.items.append(item)
