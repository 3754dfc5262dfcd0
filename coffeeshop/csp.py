"""The Content-Security-Policy on the documents a browser renders (django-csp: CONTENT_SECURITY_POLICY).

A JSON reply is never rendered (`X-Content-Type-Options: nosniff`), so it carries no policy: building
the header costs ~50 µs, and machines send thousands of requests a second whose replies are JSON.
"""

from csp.middleware import CSPMiddleware


class DocumentPolicyMiddleware(CSPMiddleware):
    def process_response(self, request, response):
        if response.get("Content-Type", "").startswith("application/json"):
            return response
        return super().process_response(request, response)
