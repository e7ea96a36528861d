# The classic Flask example from the article trickle grew from, exactly as
# written (run as `python flask_classic.py` or `gunicorn flask_classic:app`).
from flask import Flask, Response, stream_with_context
import time

app = Flask(__name__)

@app.route('/stream')
def stream_data():
    def generate():
        for i in range(10):
            yield f"Data chunk {i} at {time.time()}\n"
            time.sleep(1)
    return Response(stream_with_context(generate()), mimetype='text/plain')

if __name__ == '__main__':
    app.run(debug=True, host='0.0.0.0', port=8080)
