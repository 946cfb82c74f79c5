"""Keyset pagination for the ready list: (priority, created_at, id), every page an index scan.

DRF's cursor pagination positions on the first ordering field only and counts an offset
among equal values; with thousands of tasks at one priority, deep pages become offset scans
and shift as tasks are claimed. Here the cursor is the last row's full sort key.
"""

import base64
import binascii
import json
from datetime import datetime

from rest_framework.exceptions import NotFound
from rest_framework.response import Response
from rest_framework.utils.urls import replace_query_param

from orchestration.models import POOL_ORDER, pool_after
from tascade.api import IdCursorPagination


class ReadyListPagination(IdCursorPagination):
    ordering = POOL_ORDER

    def paginate_queryset(self, queryset, request, view=None):
        self.page_size = self.get_page_size(request)
        self.base_url = request.build_absolute_uri()
        after = self._decode(request.query_params.get(self.cursor_query_param))
        if after is not None:
            queryset = queryset.filter(pool_after(*after))
        rows = list(queryset.order_by(*self.ordering)[: self.page_size + 1])
        self.has_next = len(rows) > self.page_size
        self.page = rows[: self.page_size]
        return self.page

    def get_paginated_response(self, data):
        next_url = None
        if self.has_next:
            last = self.page[-1]
            key = json.dumps([last.priority, last.created_at.isoformat(), last.pk])
            token = base64.urlsafe_b64encode(key.encode()).decode()
            next_url = replace_query_param(self.base_url, self.cursor_query_param, token)
        return Response({"next": next_url, "previous": None, "results": data})

    def _decode(self, token: str | None):
        if token is None:
            return None
        try:
            priority, created_at, pk = json.loads(base64.urlsafe_b64decode(token.encode()))
            key = (int(priority), datetime.fromisoformat(created_at), int(pk))
        except (ValueError, TypeError, binascii.Error, UnicodeError):
            raise NotFound("Invalid cursor.") from None
        if not (-(2**31) <= key[0] < 2**31 and 0 < key[2] < 2**62) or key[1].tzinfo is None:
            raise NotFound("Invalid cursor.")
        return key
