"""Keep the request being served where `audit.records.record()` finds it: signals such as `post_save` carry no
request, yet the record needs who did it and from where (the staff member behind an admin action, say)."""

from audit.records import serving


class RequestContextMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        with serving(request):
            return self.get_response(request)
