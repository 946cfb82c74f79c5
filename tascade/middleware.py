"""Domain errors raised by the server-rendered pages, answered in the one error shape.

The API renders them through its exception handler; a page view (dashboard, review, plan)
that lets one escape (a project or task that does not exist or is not visible) would
otherwise be a 500. This gives it the same status and body the API would.
"""

from django.http import JsonResponse

from tascade.errors import DomainError


class DomainErrorMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_exception(self, request, exception):
        if isinstance(exception, DomainError):
            return JsonResponse({"error": exception.as_dict()}, status=exception.http_status)
        return None
