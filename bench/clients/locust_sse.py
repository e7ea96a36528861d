# Scenario 4's Locust client: each user holds one SSE stream open and reads
# it line by line, the way Locust users write streaming tests (HttpUser,
# requests with stream=True). The stream's path comes from TRICKLE_SSE_PATH.
import os

from locust import HttpUser, constant, task

PATH = os.environ.get("TRICKLE_SSE_PATH", "/sse?chunks=1000000&interval_ms=5000")


class SseUser(HttpUser):
    wait_time = constant(0)

    @task
    def hold_stream(self):
        events = 0
        with self.client.get(PATH, stream=True, catch_response=True, name="sse",
                             headers={"Accept": "text/event-stream"}, timeout=600) as response:
            for line in response.iter_lines(chunk_size=None):
                if line.startswith(b"id:"):
                    events += 1
            response.success()
