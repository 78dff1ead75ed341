"""harness: a plugin-based evaluation harness for language models that act.

The public surface is this module and nothing else (``harness.testing`` adds pytest
fixtures): the hook marker and the registration callback for plugins, the parameter
declaration, the records that cross plugin boundaries, the base classes of each kind of part,
the events lifecycle hooks receive, and the functions that load manifests, run them and read
results back. Modules whose names start with ``_`` are private.

>>> from harness import load_manifest, run_manifest, load_results
>>> result = run_manifest(load_manifest("my.yaml"), out="runs/try")  # doctest: +SKIP
>>> load_results([result.run_dir])  # doctest: +SKIP
"""

from harness import _compat
from harness._agents import Agent
from harness._agents import Environment
from harness._agents import Episode
from harness._agents import StepResult
from harness._agents import Trajectory
from harness._errors import HarnessError
from harness._errors import InputError
from harness._errors import ManifestError
from harness._errors import PluginError
from harness._errors import StopRun
from harness._figures import figure_html
from harness._formats import FormatAxes
from harness._formats import format_name
from harness._formats import formats_param
from harness._formats import parse_format
from harness._formats import select_formats
from harness._hookspecs import hookimpl
from harness._inputs import parse_json
from harness._inputs import read_jsonl
from harness._manifest import Entry
from harness._manifest import Manifest
from harness._manifest import load_manifest
from harness._parts import Backend
from harness._parts import BuildContext
from harness._parts import DecodeError
from harness._parts import Decoder
from harness._parts import Metric
from harness._parts import Task
from harness._plugins import PluginHost
from harness._plugins import Register
from harness._records import ChatRequest
from harness._records import ChatResponse
from harness._records import GenerationParams
from harness._records import Message
from harness._records import Outcome
from harness._records import ReportSection
from harness._records import RunEnded
from harness._records import RunInfo
from harness._records import RunStarted
from harness._records import Sample
from harness._records import SampleFinished
from harness._records import SampleRecord
from harness._records import Score
from harness._records import ToolCall
from harness._report import Table
from harness._results import RunView
from harness._results import load_results
from harness._results import load_samples
from harness._run import RunResult
from harness._run import run_manifest
from harness._schema import Operational
from harness._schema import Params
from harness._schema import param

#: The public names by theme, in the order ``docs/api.md`` presents them.
API_GROUPS: dict[str, list[str]] = {
    "Running and reading runs": [
        "load_manifest",
        "run_manifest",
        "load_results",
        "load_samples",
        "Manifest",
        "Entry",
        "RunResult",
    ],
    "Writing plugins": [
        "hookimpl",
        "Register",
        "PluginHost",
        "Params",
        "param",
        "Operational",
        "BuildContext",
        "Backend",
        "Task",
        "Metric",
        "Decoder",
        "DecodeError",
        "read_jsonl",
        "parse_json",
    ],
    "Agents and environments": ["Environment", "StepResult", "Agent", "Episode", "Trajectory"],
    "Prompt-format axes": [
        "FormatAxes",
        "formats_param",
        "select_formats",
        "format_name",
        "parse_format",
    ],
    "Records that cross plugin boundaries": [
        "Message",
        "ToolCall",
        "GenerationParams",
        "ChatRequest",
        "ChatResponse",
        "Sample",
        "Outcome",
        "Score",
        "SampleRecord",
    ],
    "Lifecycle events and the report": [
        "RunInfo",
        "RunStarted",
        "SampleFinished",
        "RunEnded",
        "RunView",
        "ReportSection",
        "Table",
        "figure_html",
    ],
    "Errors": ["HarnessError", "ManifestError", "PluginError", "InputError", "StopRun"],
}

__all__ = [
    "Agent",
    "Backend",
    "BuildContext",
    "ChatRequest",
    "ChatResponse",
    "DecodeError",
    "Decoder",
    "Entry",
    "Environment",
    "Episode",
    "FormatAxes",
    "GenerationParams",
    "HarnessError",
    "InputError",
    "Manifest",
    "ManifestError",
    "Message",
    "Metric",
    "Operational",
    "Outcome",
    "Params",
    "PluginError",
    "PluginHost",
    "Register",
    "ReportSection",
    "RunEnded",
    "RunInfo",
    "RunResult",
    "RunStarted",
    "RunView",
    "Sample",
    "SampleFinished",
    "SampleRecord",
    "Score",
    "StepResult",
    "StopRun",
    "Table",
    "Task",
    "ToolCall",
    "Trajectory",
    "figure_html",
    "format_name",
    "formats_param",
    "hookimpl",
    "load_manifest",
    "load_results",
    "load_samples",
    "param",
    "parse_format",
    "parse_json",
    "read_jsonl",
    "run_manifest",
    "select_formats",
]

_compat.install()
