"""Which prompt an orchestrator run asks: a literal prompt, else a prompt file, else the
configured default file (the source design's order, so a job parameter set to an empty
string falls through to the file)."""

from __future__ import annotations

from pathlib import Path

from rlm_engine.errors import ConfigurationError
from rlm_engine.jobs.settings import JobSettings

THREE_WAYS = (
    "give the prompt with --prompt TEXT (or RLM_PROMPT), a file with --prompt-file PATH "
    "(or RLM_PROMPT_FILE), or write it to the default file (RLM_DEFAULT_PROMPT_FILE, "
    "else RLM_HOME/task.txt)"
)


class PromptNotFoundError(ConfigurationError):
    """The prompt file to read does not exist (or cannot be read as text)."""

    def __init__(self, path: str, why: str, *, default: bool) -> None:
        which = "default prompt file" if default else "prompt file"
        super().__init__(f"{which} {path} {why}", hint=THREE_WAYS)
        self.path = path


def resolve_prompt(settings: JobSettings) -> str:
    """The prompt the settings give; `PromptNotFoundError` names the file it could not
    read and the three ways to give a prompt."""
    if settings.prompt.strip():
        return settings.prompt
    default = not settings.prompt_file
    path = settings.prompt_file or settings.default_prompt_file
    file = Path(path).expanduser()
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise PromptNotFoundError(path, "does not exist", default=default) from None
    except IsADirectoryError:
        raise PromptNotFoundError(path, "is a directory, not a file", default=default) from None
    except UnicodeDecodeError:
        raise PromptNotFoundError(path, "is not UTF-8 text", default=default) from None
    except OSError as exc:
        raise PromptNotFoundError(
            path, f"cannot be read ({exc.strerror or exc})", default=default
        ) from None
    if not text.strip():
        raise PromptNotFoundError(path, "is empty", default=default)
    return text.strip()
