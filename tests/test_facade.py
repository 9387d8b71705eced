"""The service is a façade (issue 9): `web/` reaches nothing behind it, and it shows nothing of
its collaborators. An AST scan of `medreq/web/*.py`, and a look at a built service."""

from __future__ import annotations

import ast
import asyncio
from pathlib import Path

import pytest

import medreq
from medreq.auth import TokenIssuer
from medreq.bootstrap import build_service, open_service
from medreq.config import Settings
from medreq.hub import MemoryHub
from medreq.media import MediaStore
from medreq.service.directory import Directory
from medreq.storage import Store

WEB = Path(medreq.__file__).parent / "web"
COLLABORATORS = {"store", "hub", "media", "settings", "tokens", "directory", "vapid"}
# behind the façade: web/ must not import them (bootstrap assembles them); the `medreq.service`
# package itself (the façade, `Caller`, `Upload`) is what web/ uses
BEHIND = ("medreq.storage", "medreq.hub", "medreq.service.")


def _behind(module: str) -> bool:
    return (module + ".").startswith(BEHIND) and module != "medreq.service"


# media.py's names of the URL space (collections and their content types), not the media store
MEDIA_WIRE_NAMES = {"CONTENT_TYPES", "KIND_BY_PREFIX"}


def _modules() -> list[tuple[str, ast.Module]]:
    return [(path.name, ast.parse(path.read_text(), str(path))) for path in sorted(WEB.glob("*.py"))]


def _imported(node: ast.ImportFrom) -> str:
    """The absolute module of `from ..x import y` inside medreq/web/."""
    if node.level == 0:
        return node.module or ""
    base = ["medreq", "web"][: 2 - (node.level - 1)]
    return ".".join([*base, node.module] if node.module else base)


def _names_service(node: ast.expr) -> bool:
    """`service`, `self.service`, `connection.service`, `app.state.service`, `service_of(r)`."""
    if isinstance(node, ast.Name):
        return node.id == "service"
    if isinstance(node, ast.Attribute):
        return node.attr == "service"
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
        return node.func.id == "service_of"
    return False


def test_the_scan_finds_what_it_looks_for() -> None:
    """The checks below would see a reach-in, were there one."""
    tree = ast.parse(
        "from ..storage import queries\nx = service_of(request).store.read\ny = self.service.hub\n"
    )
    [imported] = [n for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)]
    assert _imported(imported) == "medreq.storage"
    reached = [n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute) and _names_service(n.value)]
    assert sorted(reached) == ["hub", "store"]
    assert _behind("medreq.storage") and _behind("medreq.service.core") and not _behind("medreq.service")


@pytest.mark.parametrize(
    ("name", "tree"), _modules(), ids=lambda value: value if isinstance(value, str) else ""
)
def test_web_reaches_only_the_facade(name: str, tree: ast.Module) -> None:
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and _names_service(node.value):
            assert node.attr not in COLLABORATORS, f"web/{name}:{node.lineno} reaches service.{node.attr}"
        if isinstance(node, ast.Import):
            for alias in node.names:
                assert not _behind(alias.name), f"web/{name}:{node.lineno} imports {alias.name}"
        if isinstance(node, ast.ImportFrom):
            module = _imported(node)
            assert not _behind(module), f"web/{name}:{node.lineno} imports {module}"
            if module == "medreq.media":
                names = {alias.name for alias in node.names}
                assert names <= MEDIA_WIRE_NAMES, (
                    f"web/{name}:{node.lineno} imports {names} from medreq.media"
                )
            if module == "medreq.bootstrap":
                assert name == "app.py", f"web/{name} assembles the service; only app.py may"


def test_the_facade_shows_no_collaborator(tmp_path: Path) -> None:
    service = build_service(Settings.load(env={}, data_dir=tmp_path))
    hidden = (Store, MemoryHub, MediaStore, TokenIssuer, Settings, Directory)
    public = {name: value for name, value in vars(service).items() if not name.startswith("_")}
    assert not COLLABORATORS & public.keys()
    assert [name for name, value in public.items() if isinstance(value, hidden)] == []
    # what it does show: operations (bound to its parts) and the transports' limits
    assert {"create_request", "respond", "subscribe", "for_client", "limits"} <= public.keys()


async def test_start_runs_the_background_work_and_close_stops_it(tmp_path: Path) -> None:
    def background() -> set[str]:
        return {task.get_name() for task in asyncio.all_tasks()} & {"medreq-prune", "medreq-webhooks"}

    settings = Settings.load(env={}, data_dir=tmp_path, scrypt_n=1024, event_retention_days=1)
    async with open_service(settings, serve=True) as service:
        assert await service.last_account_change() == 0  # migrated
        assert background() == {"medreq-prune", "medreq-webhooks"}
    assert background() == set()
    async with open_service(settings) as service:  # a command's service: the database only
        assert background() == set()
