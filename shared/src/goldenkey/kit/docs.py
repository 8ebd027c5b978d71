"""The API documents' pages — Swagger UI (`/docs`), ReDoc (`/redoc`), the AsyncAPI viewer
(`/asyncapi/view`) — with their scripts and styles served from installed packages, not a CDN, so
they work on a machine without internet.

- Swagger UI and ReDoc: the files `fastapi-offline` ships (swagger-ui-dist's bundle and CSS,
  ReDoc's standalone bundle), rendered with FastAPI's own `get_swagger_ui_html` / `get_redoc_html`.
- AsyncAPI: the `<asyncapi-viewer>` web component `asyncapi-viewer` ships. FastStream's
  `get_asyncapi_html` loads AsyncAPI's React component from a CDN, which no PyPI package ships.

Like `/openapi.json` and `/asyncapi`, the pages are public (docs/decisions.md, "HTTP").
"""

from __future__ import annotations

import html

from fastapi import APIRouter, FastAPI, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

DOCS_ASSETS = "/docs/assets"
ASYNCAPI_ASSETS = "/asyncapi/assets"


def mount_assets(app: FastAPI) -> None:
    app.mount(DOCS_ASSETS, StaticFiles(packages=[("fastapi_offline", "static")]), name="docs-assets")
    app.mount(ASYNCAPI_ASSETS, StaticFiles(packages=[("asyncapi_viewer", "static")]), name="asyncapi-assets")


def docs_router(title: str, openapi_url: str = "/openapi.json") -> APIRouter:
    router = APIRouter(include_in_schema=False)

    @router.get("/docs")
    async def swagger_ui(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return get_swagger_ui_html(
            openapi_url=f"{root}{openapi_url}",
            title=f"{title} — Swagger UI",
            swagger_js_url=f"{root}{DOCS_ASSETS}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{DOCS_ASSETS}/swagger-ui.css",
            swagger_favicon_url=f"{root}{DOCS_ASSETS}/favicon.png",
        )

    @router.get("/redoc")
    async def redoc(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return get_redoc_html(
            openapi_url=f"{root}{openapi_url}",
            title=f"{title} — ReDoc",
            redoc_js_url=f"{root}{DOCS_ASSETS}/redoc.standalone.js",
            redoc_favicon_url=f"{root}{DOCS_ASSETS}/favicon.png",
            with_google_fonts=False,
        )

    return router


def asyncapi_html(title: str, document_url: str, root: str = "") -> str:
    """A page rendering the AsyncAPI document at `document_url` with the packaged viewer."""
    name = html.escape(title)
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
    <meta charset="utf-8">
    <meta name="viewport" content="width=device-width, initial-scale=1">
    <title>{name} — AsyncAPI</title>
    <link rel="icon" href="{root}{DOCS_ASSETS}/favicon.png">
    <link rel="stylesheet" href="{root}{ASYNCAPI_ASSETS}/asyncapi-theme.css">
    <script type="module" src="{root}{ASYNCAPI_ASSETS}/asyncapi-viewer.js"></script>
</head>
<body>
    <asyncapi-viewer src="{html.escape(root + document_url)}" sidebar></asyncapi-viewer>
</body>
</html>
"""
