"""Alert thresholds are edited here; roll-ups are only shown (they are recomputed, never
edited)."""

from django.contrib import admin

from metrics.models import AlertSettings, DailyRollup


@admin.register(AlertSettings)
class AlertSettingsAdmin(admin.ModelAdmin):
    list_display = [
        "project",
        "enabled",
        "blocked_ratio_max",
        "lease_expiries_per_hour_max",
        "wip_age_hours_max",
        "change_factor",
        "dedupe_minutes",
    ]
    list_select_related = ["project"]


@admin.register(DailyRollup)
class DailyRollupAdmin(admin.ModelAdmin):
    list_display = ["project", "day", "final", "computed_at"]
    list_filter = ["final"]
    date_hierarchy = "day"
    readonly_fields = ["project", "day", "figures", "state", "final", "computed_at"]

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False
