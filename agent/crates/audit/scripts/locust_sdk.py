"""Locust user built on openai-python with the SDK's default retries (max_retries=2):
Locust sees one request per SDK call, so 429s the SDK retried into a success never
reach its stats. The wire shows them, with x-stainless-retry-count on each attempt."""
import time

import openai
from locust import User, constant, task


class SdkUser(User):
    wait_time = constant(0.02)

    def on_start(self):
        self.sdk = openai.OpenAI(base_url=self.host + "/v1", api_key="sk-fixture-not-a-key")

    @task
    def chat(self):
        start = time.perf_counter()
        exc = None
        try:
            self.sdk.chat.completions.create(
                model="mock-model", messages=[{"role": "user", "content": "hi"}], max_tokens=8
            )
        except Exception as e:  # recorded as a failure, like most SDK-based locustfiles
            exc = e
        self.environment.events.request.fire(
            request_type="POST", name="/v1/chat/completions",
            response_time=(time.perf_counter() - start) * 1000, response_length=0,
            exception=exc, context={},
        )
