"""The ingest API: rollout events in over HTTP, a tenant's status out (see lockstep.api.app).

Built on FastAPI (typed endpoints and an OpenAPI page from the same pydantic models, on the
Starlette/uvicorn stack Streamlit already brings) and served by uvicorn:
`python -m lockstep api --host 127.0.0.1 --port 8700` or `make api`.
"""

from lockstep.api.app import create_app

__all__ = ["create_app"]
