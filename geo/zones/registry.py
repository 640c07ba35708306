"""The registry of extent kinds: each kind (``community``, ``buffer``, ``radius``...) is one
class implementing :class:`ExtentKind`; the engine (:mod:`geo.zones.engine`), incremental
updates (:mod:`geo.incremental`) and history (:mod:`geo.history`) ask the registry for the kind
of a level's extent and call its methods; none of them names a kind.

``register`` also widens the ``extent`` union of rule files (:func:`geo.policy.accept_extents`),
so that a kind registered by other code (a plug-in, a test) is accepted in rule files.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar, Generic, Literal, TypeVar, cast

import numpy as np
from numpy.typing import NDArray
from scipy import sparse

from riskmap.geo import policy as _policy
from riskmap.geo.policy import ExtentSpec, Level, Policy

if TYPE_CHECKING:
    from riskmap.geo.zones.features import Features
    from riskmap.geo.zones.layer import CommunityLayer
    from riskmap.geo.zones.state import Activity, Context, LevelState, Patching, Units

Bool1D = NDArray[np.bool_]
Bool2D = NDArray[np.bool_]
Int1D = NDArray[np.int64]
S = TypeVar("S", bound=ExtentSpec)


class ExtentKind(Generic[S]):
    """One extent kind: its rule-file model (``spec``) and how the engine draws it.

    A *triggered* kind (``spec.triggered``) groups qualifying case locations into units
    (:meth:`units`) and draws each unit either as whole communities (:meth:`selection`) or,
    when the level is drawn as exact geometry, as features (:meth:`features`). A *derived*
    kind computes its level from the levels above it (:meth:`derived`). The other methods
    have defaults that suit most kinds.
    """

    name: ClassVar[str]
    spec: ClassVar[type[ExtentSpec]]
    # drawn over every community before any case (the base level of a place)
    covers_all: ClassVar[bool] = False
    # each community's row depends on that community's own cases only
    row_local: ClassVar[bool] = False

    def extent(self, lv: Level) -> S:
        """The level's extent, as this kind's model."""
        assert lv.extent.kind == self.name
        return cast(S, lv.extent)

    # ---- triggered kinds -------------------------------------------------------------------

    def units(self, ctx: Context, lv: Level, q: Bool1D) -> Units:
        """The qualifying case locations (mask ``q`` over ``ctx.cases``) grouped into units."""
        raise NotImplementedError(f"extent {self.name!r} is not triggered")

    def selection(self, ctx: Context, lv: Level, units: Units) -> sparse.csr_matrix:
        """units x communities: the communities each unit draws."""
        raise NotImplementedError(f"extent {self.name!r} is not triggered")

    def features(
        self, ctx: Context, lv: Level, units: Units, act: Activity, discs: bool = True
    ) -> Features:
        """Exact-geometry features of the units ever active (levels drawn exactly)."""
        raise NotImplementedError(f"extent {self.name!r} is not drawn as exact geometry")

    def cluster_members(self, layer: CommunityLayer, lv: Level) -> sparse.csr_matrix | None:
        """communities x units: the communities whose clusters count for a unit (None: the
        communities of the unit's qualifying locations)."""
        return None

    # ---- derived kinds ---------------------------------------------------------------------

    def derived(self, ctx: Context, lv: Level) -> LevelState:
        """The level from the levels computed before it (``ctx.states``)."""
        raise NotImplementedError(f"extent {self.name!r} is triggered")

    # ---- zones -----------------------------------------------------------------------------

    def cell_res(self, lv: Level, layer: CommunityLayer) -> int:
        """The resolution of an exact-geometry zone's cells (before compaction)."""
        return layer.h3_res

    def own_cells(
        self, lv: Level, layer: CommunityLayer, keys: list[str]
    ) -> NDArray[np.uint64] | None:
        """The cells of an exact-geometry zone part made of the features ``keys``, when the
        kind knows them itself (None: the communities' cells in the part)."""
        return None

    # ---- incremental updates ----------------------------------------------------------------

    def incremental(self, policy: Policy, lv: Level) -> bool:
        """Whether a batch of new cases can update the level row by row (else the whole rule
        is recomputed)."""
        return False

    def unit_rows(self, layer: CommunityLayer, lv: Level, seed: Bool1D) -> Bool1D:
        """Triggered kinds: the communities whose rows new cases in ``seed`` can change."""
        return seed

    def patch(self, p: Patching, lv: Level, src_dirty: Bool1D) -> tuple[Int1D, LevelState] | None:
        """Derived kinds: (rows, their new state) after the rows ``src_dirty`` of the levels
        it is drawn around changed (None: nothing to recompute)."""
        raise NotImplementedError(f"extent {self.name!r} has no incremental update")


_KINDS: dict[str, ExtentKind[Any]] = {}
K = TypeVar("K", bound=ExtentKind[Any])


def register(kind: K) -> K:
    """Add an extent kind (replacing one of the same name) and accept it in rule files."""
    spec_kind = kind.spec.model_fields["kind"].annotation
    if spec_kind != Literal[kind.name]:
        raise ValueError(f"extent kind {kind.name!r}: its model's 'kind' is {spec_kind}")
    _KINDS[kind.name] = kind
    _policy.accept_extents([k.spec for k in _KINDS.values()])
    return kind


def unregister(name: str) -> None:
    """Remove an extent kind (tests that register a toy kind put things back)."""
    del _KINDS[name]
    _policy.accept_extents([k.spec for k in _KINDS.values()])


def kind_of(lv: Level) -> ExtentKind[Any]:
    """The kind of a level's extent."""
    try:
        return _KINDS[lv.extent.kind]
    except KeyError:
        raise KeyError(f"extent kind {lv.extent.kind!r} is not registered") from None


def kinds() -> dict[str, ExtentKind[Any]]:
    """The registered kinds by name."""
    return dict(_KINDS)
