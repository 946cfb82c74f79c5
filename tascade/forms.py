"""Forms of the dashboard pages (tascade/dashboard.py)."""

from django import forms

from orchestration.models import TaskClass
from orchestration.selectors import BOARD_CARDS_MAX, BOARD_COLUMNS, TaskFilters
from tascade.api import MAX_ID


class TaskFilterForm(forms.Form):
    """The board's and the graph's filters, from the query string."""

    phase = forms.IntegerField(required=False, min_value=1, max_value=MAX_ID)
    milestone = forms.IntegerField(required=False, min_value=1, max_value=MAX_ID)
    agent = forms.CharField(required=False, max_length=100, strip=True)
    task_class = forms.ChoiceField(required=False, choices=[("", "any"), *TaskClass.choices])
    path = forms.CharField(
        required=False,
        max_length=300,
        strip=True,
        help_text="A glob (src/api/*.py) or a prefix (docs/) against the expected paths.",
    )

    def filters(self) -> TaskFilters:
        """The filters asked for; none when the form is not valid (the page says why)."""
        if not self.is_valid():
            return TaskFilters()
        data = self.cleaned_data
        return TaskFilters(
            phase_id=data["phase"],
            milestone_id=data["milestone"],
            agent=data["agent"],
            task_class=data["task_class"],
            path=data["path"],
        )


class BoardForm(TaskFilterForm):
    column = forms.ChoiceField(
        required=False, choices=[("", "all"), *[(s, s) for s in BOARD_COLUMNS]]
    )
    per_column = forms.IntegerField(required=False, min_value=1, max_value=BOARD_CARDS_MAX)


class GraphForm(TaskFilterForm):
    focus = forms.IntegerField(required=False, min_value=1, max_value=MAX_ID)
    depth = forms.IntegerField(required=False, min_value=0, max_value=20)


class StampForm(forms.Form):
    """What a polling fragment last showed: unchanged means nothing to send (204)."""

    since = forms.IntegerField(required=False, min_value=0, max_value=MAX_ID)
