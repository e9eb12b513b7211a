"""Graph passes: each a named Graph -> Graph unit in its own module; ``pipeline.py`` lists the
order. Every pass leaves a valid graph (checked after each one)."""
from __future__ import annotations

from typing import Callable, ClassVar

from ..ir import Graph
from ..ops import check_types


class Pass:
    name: ClassVar[str]
    description: ClassVar[str] = ""
    # back-end passes (select-kernels, plan-memory) decide for a target: run(g, target)
    needs_target: ClassVar[bool] = False

    def run(self, g: Graph) -> Graph:
        raise NotImplementedError(self.name)


PASSES: dict[str, type[Pass]] = {}


def register(cls: type[Pass]) -> type[Pass]:
    PASSES[cls.name] = cls
    return cls


def run_passes(g: Graph, names: list[str], after: Callable[[str, Graph], None] | None = None,
               target=None) -> Graph:
    """Run passes in order, verifying the graph after each; ``after(name, graph)`` sees every
    intermediate result (for --dump-ir). ``target``: for the back-end passes."""
    for name in names:
        p = PASSES[name]()
        g = p.run(g, target) if p.needs_target else p.run(g)
        g.verify()
        check_types(g)
        if after is not None:
            after(name, g)
    return g


def _load_all() -> None:
    from . import canonicalize, dce, dead_channels, fold_batchnorm, fuse, fuse_transformer, hoist_quantize, layout, lower_qdq, patch, plan_memory, select_kernels  # noqa: F401


_load_all()
