"""Local paths first; otherwise a Hugging Face hub repo id, downloaded when reachable.

Accepted references: a local file or folder; `owner/name`, `owner/name/sub/folder`,
either with `@revision`; and `hf://owner/name/path/to/file` URIs (circuit-tracer
configs list per-layer files that way).
"""

from __future__ import annotations

import re
from pathlib import Path

from circuitscope.errors import CircuitscopeError

REPO_ID = re.compile(r"^(?:hf://)?([\w.-]+/[\w.-]+)((?:/[^@?]+)?)(?:[@?](?:revision=)?(.+))?$")


def resolve_location(reference: str) -> Path:
    """A local path for `reference`, downloading a hub repo (or subfolder) if needed."""
    path = Path(reference).expanduser()
    if path.exists():
        return path
    match = REPO_ID.match(reference)
    if match is None or reference.startswith((".", "/", "~")):
        raise CircuitscopeError(f"no such file or folder: {reference}")
    repo_id, subfolder, revision = match.group(1), match.group(2).strip("/"), match.group(3)
    patterns = [f"{subfolder}/*"] if subfolder else None
    local = _snapshot(reference, repo_id, revision, patterns)
    target = local / subfolder if subfolder else local
    if not target.exists():
        raise CircuitscopeError(f"{reference}: the hub repo {repo_id} has no {subfolder}")
    return target


def download_file(uri: str) -> Path:
    """A local copy of one file named by an hf://owner/name/path[@revision] URI or local path."""
    path = Path(uri).expanduser()
    if path.exists():
        return path
    match = REPO_ID.match(uri)
    if match is None or not match.group(2):
        raise CircuitscopeError(f"no such file: {uri}")
    repo_id, filename, revision = match.group(1), match.group(2).strip("/"), match.group(3)
    local = _snapshot(uri, repo_id, revision, [filename])
    return local / filename


def _snapshot(
    reference: str, repo_id: str, revision: str | None, patterns: list[str] | None
) -> Path:
    try:
        from huggingface_hub import snapshot_download

        local = snapshot_download(repo_id, revision=revision, allow_patterns=patterns)
    except Exception as error:  # offline, unknown repo, no permission, ...
        detail = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise CircuitscopeError(
            f"{reference} is not a local path, and the hub download failed: {detail}"
        ) from None
    return Path(local)
