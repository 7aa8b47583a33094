"""The impact preview before a deploy: ``orchestrator diff OLD.yaml NEW.yaml --events FILE``."""

from orchestrator.preview.compare import Change, Send, StepRow, compare_sends
from orchestrator.preview.diff import Inside, Preview, preview, timer_span_ms

__all__ = ["Change", "Inside", "Preview", "Send", "StepRow", "compare_sends", "preview", "timer_span_ms"]
