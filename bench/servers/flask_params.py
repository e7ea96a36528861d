# The classic Flask example with trickle's stream parameters and SSE
# framing (ids, retry, heartbeats, end), so it can run the same scenarios.
# gunicorn --workers 1 --threads 8 flask_params:app   (Cloud Run's Python samples' way)
import json
import time

from flask import Flask, Response, request, stream_with_context

app = Flask(__name__)
HEARTBEAT = 15.0


@app.route('/sse')
def sse():
    chunks = int(request.args.get('chunks', 10))
    interval = int(request.args.get('interval_ms', 1000)) / 1000
    payload = 'x' * int(request.args.get('size', 0))

    def generate():
        yield 'retry: 1000\n\n'
        due = time.monotonic()
        for i in range(chunks):
            while True:
                wait = due - time.monotonic()
                if wait <= 0:
                    break
                time.sleep(min(wait, HEARTBEAT))
                if due - time.monotonic() > 0:
                    yield ': heartbeat\n\n'
            yield f'id: {i}\nevent: chunk\ndata: {json.dumps({"id": i, "payload": payload})}\n\n'
            due += interval
        yield 'event: end\ndata: {}\n\n'
    return Response(stream_with_context(generate()), mimetype='text/event-stream')


if __name__ == '__main__':
    import sys
    app.run(host='127.0.0.1', port=int(sys.argv[1]) if len(sys.argv) > 1 else 8080, threaded=True)
