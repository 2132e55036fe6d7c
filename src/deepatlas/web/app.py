"""The local web atlas: a FastAPI app serving the page, its JSON and the lab queue.

Safe by default: it binds 127.0.0.1, answers only requests whose Host is the bound one (a DNS
rebinding page gets 400), asks for the per-process token on every request that changes
something (403 without it), takes typed and bounded bodies only, and serves files only from
static/, the VENDOR folders of node_modules and the runs' own folders, after checking the id.
"""

from __future__ import annotations

import mimetypes
import secrets
import threading
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Literal

from fastapi import Body, FastAPI, HTTPException, Query, Request
from fastapi.responses import FileResponse, JSONResponse, PlainTextResponse
from pydantic import BaseModel, ConfigDict, Field

import deepatlas
from deepatlas.catalog.schema import LAB_RE
from deepatlas.web.api import Atlas, NotFound, finite
from deepatlas.web.assets import STATIC_DIR, vendor_dir
from deepatlas.web.jobs import JobQueue, QueueFull, UnknownJob

LOOPBACK = ("127.0.0.1", "localhost", "::1")
TOKEN_HEADER = "X-Deepatlas-Token"
WRITES = ("POST", "PUT", "PATCH", "DELETE")
for _ext, _type in ((".js", "text/javascript"), (".mjs", "text/javascript"), (".css", "text/css"),
                    (".woff2", "font/woff2"), (".woff", "font/woff"), (".ttf", "font/ttf"), (".svg", "image/svg+xml")):
    mimetypes.add_type(_type, _ext)


@dataclass
class Settings:
    host: str = "127.0.0.1"
    port: int = 8765
    token: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    allowed_hosts: list[str] | None = None  # Host header values answered; default: the bound one and localhost
    max_queued: int = 20

    def hosts(self) -> set[str]:
        if self.allowed_hosts is not None:
            return {h.lower() for h in self.allowed_hosts}
        host = f"[{self.host}]" if ":" in self.host else self.host
        return {f"{host}:{self.port}".lower(), f"localhost:{self.port}", f"127.0.0.1:{self.port}"}


class FiniteJSON(JSONResponse):
    """JSON whose NaN and infinities (a diverged metric) become null, which browsers can parse."""

    def render(self, content) -> bytes:
        return super().render(finite(content))


class ProgressBody(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    state: Literal["done", "learning", "skipped", "pending"]


class JobBody(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    lab: str = Field(min_length=3, max_length=100, pattern=LAB_RE.pattern, description="a registered lab id")
    scale: Literal["quick", "default"] = "quick"
    seed: int = Field(0, ge=0, le=1_000_000)


def safe_file(root: Path, relative: str) -> Path | None:
    """`root/relative` when it is a file inside root (after resolving `..` and links), else None."""
    try:
        base = root.resolve()
        path = (base / relative).resolve()
    except (OSError, ValueError):  # a NUL byte, a loop of links
        return None
    return path if path.is_relative_to(base) and path.is_file() else None


def create_app(settings: Settings | None = None, *, jobs: JobQueue | None = None) -> FastAPI:
    """The app; `jobs` replaces the lab queue (tests give one whose children only sleep)."""
    settings = settings or Settings()
    atlas = Atlas(live=True)
    jobs_lock = threading.Lock()

    def job_queue() -> JobQueue:  # started on first use, so an app that runs no lab starts no thread
        nonlocal jobs
        with jobs_lock:
            if jobs is None:
                jobs = JobQueue(max_queued=settings.max_queued)
            return jobs

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        threading.Thread(target=lambda: atlas.labs_by_id, daemon=True).start()  # warm the lab list
        yield
        if jobs is not None:
            jobs.close()

    app = FastAPI(title="deepatlas", version=deepatlas.__version__, lifespan=lifespan,
                  default_response_class=FiniteJSON,
                  description="The local web atlas: cards, genealogy, roadmap and lab runs. "
                              f"Requests that change something need the `{TOKEN_HEADER}` header "
                              "with the token of `api/session.json`.")
    app.state.settings, app.state.atlas, app.state.job_queue = settings, atlas, job_queue
    allowed = settings.hosts()

    @app.middleware("http")
    async def guard(request: Request, call_next):
        host = request.headers.get("host", "").lower()
        if host not in allowed:
            return FiniteJSON({"detail": f"Host {host[:100]!r} is not served here"}, status_code=400)
        if request.method in WRITES:
            given = request.headers.get(TOKEN_HEADER, "")
            if not secrets.compare_digest(given.encode(), settings.token.encode()):
                return FiniteJSON({"detail": f"missing or wrong {TOKEN_HEADER} header; "
                                             "the page reads the token from api/session.json"}, status_code=403)
        response = await call_next(request)
        response.headers.setdefault("Cache-Control", "no-cache")
        response.headers["X-Content-Type-Options"] = "nosniff"
        return response

    @app.exception_handler(NotFound)
    async def not_found(request: Request, exc: NotFound):
        return FiniteJSON({"detail": str(exc)}, status_code=404)

    @app.exception_handler(UnknownJob)
    async def unknown_job(request: Request, exc: UnknownJob):
        return FiniteJSON({"detail": str(exc)}, status_code=404)

    # the page ---------------------------------------------------------------------------------
    @app.get("/", summary="The page (static/index.html)")
    def index():
        return static_file("index.html")

    @app.get("/static/{path:path}", summary="Our own front-end files")
    def static_file(path: str):
        found = safe_file(STATIC_DIR, path)
        if found is None:
            raise NotFound(f"no static file {path[:100]!r}")
        return FileResponse(found)

    @app.get("/vendor/{prefix}/{path:path}", summary="Front-end libraries from node_modules (VENDOR folders only)")
    def vendor_file(prefix: str, path: str):
        root = vendor_dir(prefix)
        found = safe_file(root, path) if root else None
        if found is None:
            raise NotFound(f"no vendor file {prefix[:50]}/{path[:100]}")
        return FileResponse(found)

    # read-only documents -------------------------------------------------------------------------
    @app.get("/api/session.json", summary="Live or static, and the token for writes")
    def session():
        return atlas.session(settings.token)

    @app.get("/api/catalog.json", summary="Every card with its claim counts; families, stages, kinds")
    def catalog():
        return atlas.catalog()

    @app.get("/api/graph.json", summary="The genealogy: positioned nodes, typed edges, lanes, year ticks")
    def graph():
        return atlas.graph()

    @app.get("/api/mindmap.json", summary="The taxonomy as a tree: families, sub-families, cards")
    def mindmap():
        return atlas.mindmap()

    @app.get("/api/cards/{card_id}.json", summary="One card: summaries, equations, lineage, claims, labs, source",
             responses={404: {"description": "unknown card"}})
    def card(card_id: str):
        return atlas.card(card_id)

    @app.get("/api/roadmap.json", summary="The study plan by stage with each card's state")
    def roadmap():
        return atlas.roadmap()

    @app.get("/api/roadmap.md", summary="The roadmap as Markdown", response_class=PlainTextResponse)
    def roadmap_md():
        return PlainTextResponse(atlas.roadmap_markdown(), media_type="text/markdown; charset=utf-8",
                                 headers={"Content-Disposition": 'attachment; filename="roadmap.md"'})

    @app.get("/api/labs.json", summary="Every registered lab: card, budget, scales, goals")
    def labs():
        return atlas.labs()

    @app.get("/api/runs.json", summary="Your runs, newest first")
    def runs(lab: Annotated[str | None, Query(max_length=100)] = None,
             card: Annotated[str | None, Query(max_length=100)] = None,
             limit: Annotated[int, Query(ge=1, le=200)] = 50):
        return atlas.runs(lab, card, limit)

    @app.get("/api/runs/{run_id}.json", summary="One run's record and its figures",
             responses={404: {"description": "unknown run"}})
    def run(run_id: str):
        return atlas.run(run_id)

    @app.get("/api/runs/{run_id}/files/{name}", summary="A PNG, JSON or text file of one run's folder",
             responses={404: {"description": "unknown run or file"}})
    def run_file(run_id: str, name: str):
        return FileResponse(atlas.run_file(run_id, name))

    # changes (token required) -----------------------------------------------------------------------
    @app.put("/api/progress/{card_id}", summary="Set your state of a card (shared with `deepatlas mark`)",
             responses={403: {"description": "missing or wrong token"}, 404: {"description": "unknown card"}})
    def progress(card_id: str, body: Annotated[ProgressBody, Body()]):
        return atlas.mark(card_id, body.state)

    @app.post("/api/jobs", status_code=201, summary="Queue a lab run",
              responses={403: {"description": "missing or wrong token"}, 404: {"description": "unknown lab"},
                         429: {"description": "the queue is full"}})
    def submit_job(body: Annotated[JobBody, Body()]):
        atlas.lab_or_404(body.lab)
        try:
            return job_queue().submit(body.lab, body.scale, body.seed)
        except QueueFull as exc:
            raise HTTPException(429, str(exc)) from None

    @app.get("/api/jobs", summary="Every job: queued, running and recently finished")
    def list_jobs():
        return {"jobs": job_queue().list()}

    @app.get("/api/jobs/{job_id}", summary="One job, with its metric rows from `since` on",
             responses={404: {"description": "unknown job"}})
    def get_job(job_id: str, since: Annotated[int, Query(ge=0, le=10**9)] = 0):
        return job_queue().get(job_id, since)

    @app.delete("/api/jobs/{job_id}", summary="Cancel a job: a queued one is dropped, a running one interrupted",
                responses={403: {"description": "missing or wrong token"}, 404: {"description": "unknown job"}})
    def cancel_job(job_id: str):
        return job_queue().cancel(job_id)

    return app
