"""Identity stitching and erasure, pure: the identity graph and the merge of two customers' states.

See docs/identity.md. Both shells use it: ``orchestrator simulate`` and the streaming runtime.
"""

from orchestrator.core.identity.graph import (
    ERASED_KEPT,
    ERASED_TTL_MS,
    MAX_ALIASES,
    MAX_IDENTIFIERS,
    Erasure,
    IdentityGraph,
    Merge,
    Resolution,
    identifier_token,
)
from orchestrator.core.identity.markers import ErasedMarkers, key_id
from orchestrator.core.identity.merge import MERGED_REASON, MergeResult, merge_profiles, merge_states

__all__ = [
    "ERASED_KEPT",
    "ERASED_TTL_MS",
    "MAX_ALIASES",
    "MAX_IDENTIFIERS",
    "MERGED_REASON",
    "ErasedMarkers",
    "Erasure",
    "IdentityGraph",
    "Merge",
    "MergeResult",
    "Resolution",
    "identifier_token",
    "key_id",
    "merge_profiles",
    "merge_states",
]
