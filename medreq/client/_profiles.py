"""Saved logins ("profiles") of the medreq tools: server URL, account, tokens and the last event seen.

The CLI's ``--profile`` and the TUI inbox read and write the same files, through this module.
One JSON file per profile under the user config dir (``MEDREQ_CONFIG_DIR`` overrides it),
mode 0600, replaced atomically, so a patient terminal and a pharmacy terminal never write
the same file, and an update re-reads the file first so `listen` saving its last event id
cannot undo a token refresh made by another command of the same profile.
"""

from __future__ import annotations

import json
import os
import re
import secrets
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import platformdirs

from medreq.protocol import TokenOut
from medreq.protocol.errors import Invalid

_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


def config_dir() -> Path:
    override = os.environ.get("MEDREQ_CONFIG_DIR")
    return Path(override) if override else Path(platformdirs.user_config_dir("medreq"))


@dataclass
class Profile:
    """One saved login, as ``<config dir>/profiles/<name>.json`` holds it."""

    name: str
    url: str
    username: str = ""
    account_id: int | None = None
    role: str | None = None
    account_name: str = ""
    access: str | None = None
    refresh: str | None = None
    last_event_id: int | None = None


class ProfileStore:
    """The profiles under ``directory`` (default: `config_dir`), each written 0600 and atomically."""

    def __init__(self, directory: Path | None = None) -> None:
        self.directory = (directory or config_dir()) / "profiles"

    def path(self, name: str) -> Path:
        if not _NAME.match(name) or name.startswith("."):
            raise Invalid(f"profile name {name!r}: use letters, digits, '_', '.' or '-'")
        return self.directory / f"{name}.json"

    def load(self, name: str) -> Profile | None:
        try:
            data = json.loads(self.path(name).read_text(encoding="utf-8"))
        except (FileNotFoundError, ValueError):
            return None
        known = {f.name for f in fields(Profile)}
        return Profile(**{k: v for k, v in data.items() if k in known} | {"name": name})

    def save(self, profile: Profile) -> None:
        self._write(profile.name, asdict(profile))

    def save_login(self, name: str, url: str, tokens: TokenOut) -> Profile:
        """Store a fresh login; keep the last event id only if it is the same account."""
        old = self.load(name)
        account = tokens.account
        same_account = old is not None and old.url == url and old.account_id == account.id
        profile = Profile(
            name=name,
            url=url,
            username=account.username,
            account_id=account.id,
            role=account.role,
            account_name=account.name,
            access=tokens.access,
            refresh=tokens.refresh,
            last_event_id=old.last_event_id if same_account and old is not None else None,
        )
        self.save(profile)
        return profile

    def update(self, name: str, **changes: Any) -> None:
        """Change only ``changes`` in the profile as it is on disk now."""
        profile = self.load(name)
        if profile is not None:
            self._write(name, asdict(profile) | changes)

    def delete(self, name: str) -> bool:
        try:
            self.path(name).unlink()
        except FileNotFoundError:
            return False
        return True

    def _write(self, name: str, data: dict[str, Any]) -> None:
        path = self.path(name)
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        tmp = path.with_name(f".{name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                json.dump(data, out, indent=2)
                out.flush()
                os.fsync(out.fileno())
            os.chmod(tmp, 0o600)
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
