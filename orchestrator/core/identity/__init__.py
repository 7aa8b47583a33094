"""Identity stitching and erasure, pure: the identity graph and the merge of two customers' states.

See docs/identity.md. Both shells use it: ``orchestrator simulate`` and the streaming runtime.
"""

from orchestrator.core.identity.graph import (
    ALIAS_ROW,
    ERASED_KEPT,
    ERASED_TTL_MS,
    MAX_ALIASES,
    MAX_IDENTIFIERS,
    NODE_ROW,
    OWNER_ROW,
    Erasure,
    IdentityGraph,
    Merge,
    Resolution,
    claim_token,
    identifier_token,
)
from orchestrator.core.identity.markers import ErasedMarkers, key_id
from orchestrator.core.identity.merge import MERGED_REASON, MergeResult, merge_profiles, merge_states
from orchestrator.core.identity.pages import PagedMap, RowReader

__all__ = [
    "ALIAS_ROW",
    "ERASED_KEPT",
    "ERASED_TTL_MS",
    "MAX_ALIASES",
    "MAX_IDENTIFIERS",
    "MERGED_REASON",
    "NODE_ROW",
    "OWNER_ROW",
    "ErasedMarkers",
    "Erasure",
    "IdentityGraph",
    "Merge",
    "MergeResult",
    "PagedMap",
    "Resolution",
    "RowReader",
    "claim_token",
    "identifier_token",
    "key_id",
    "merge_profiles",
    "merge_states",
]
