"""Segments: live audiences over the unified profile (docs/segments.md).

A segment is a CEL condition over the profile (attributes, consent, subscription groups, other segments)
and the event history (seen()/count() with windows). Membership is kept per customer as events arrive
and as time passes (:mod:`.membership`); entering and leaving start and end journeys.
"""

from orchestrator.core.segment.loader import (
    SEGMENT_KIND,
    is_segment_file,
    is_segment_text,
    load_segment_file,
    load_segment_text,
)
from orchestrator.core.segment.membership import SegmentChange, recheck, segment_event_view
from orchestrator.core.segment.model import SegmentDefinition
from orchestrator.core.segment.registry import MAX_SEGMENTS, SegmentRegistry

__all__ = [
    "MAX_SEGMENTS",
    "SEGMENT_KIND",
    "SegmentChange",
    "SegmentDefinition",
    "SegmentRegistry",
    "is_segment_file",
    "is_segment_text",
    "load_segment_file",
    "load_segment_text",
    "recheck",
    "segment_event_view",
]
