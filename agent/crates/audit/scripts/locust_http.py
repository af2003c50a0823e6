"""Plain Locust HttpUser: every non-2xx is a failure with the HTTP status in the text."""
from locust import HttpUser, constant, task


class ChatUser(HttpUser):
    wait_time = constant(0.02)

    @task
    def chat(self):
        self.client.post(
            "/v1/chat/completions",
            json={"model": "mock-model", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 8},
            headers={"Authorization": "Bearer sk-fixture-not-a-key"},
        )
