# Python async: uvicorn + sse-starlette, the same SSE events as trickle.
#   uvicorn starlette_sse:app --port 8092 --no-access-log
import asyncio
import json

from sse_starlette.sse import EventSourceResponse, ServerSentEvent
from starlette.applications import Starlette
from starlette.routing import Route


async def sse(request):
    chunks = int(request.query_params.get('chunks', 10))
    interval = int(request.query_params.get('interval_ms', 1000)) / 1000
    payload = 'x' * int(request.query_params.get('size', 0))

    async def events():
        loop = asyncio.get_running_loop()
        due = loop.time()
        for i in range(chunks):
            wait = due - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            yield ServerSentEvent(data=json.dumps({"id": i, "payload": payload}), event='chunk', id=str(i))
            due += interval
        yield ServerSentEvent(data='{}', event='end')
    return EventSourceResponse(events(), ping=15)


app = Starlette(routes=[Route('/sse', sse)])
