"""Figures computed from the event log (roll-ups, alerts, forecasts) live here."""
