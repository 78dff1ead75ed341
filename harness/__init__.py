"""harness: a plugin-based evaluation harness for language models that act.

The public surface is small: the hook marker for plugins, the records that cross plugin
boundaries, the base classes of the three kinds of part, and the functions that load
manifests, run them and read results back.
"""

from harness.decoding import DecodeError, Decoder
from harness.errors import HarnessError, InputError, ManifestError, PluginError
from harness.hookspecs import hookimpl
from harness.interfaces import Backend, BuildContext, Metric, Task
from harness.records import (
    ChatRequest,
    ChatResponse,
    GenerationParams,
    Message,
    Outcome,
    RunInfo,
    Sample,
    SampleRecord,
    Score,
    ToolCall,
)

__all__ = [
    "Backend",
    "BuildContext",
    "ChatRequest",
    "ChatResponse",
    "DecodeError",
    "Decoder",
    "GenerationParams",
    "HarnessError",
    "InputError",
    "ManifestError",
    "Message",
    "Metric",
    "Outcome",
    "PluginError",
    "RunInfo",
    "Sample",
    "SampleRecord",
    "Score",
    "Task",
    "ToolCall",
    "hookimpl",
]
