from django import forms

from governance.models import GateVerdict, Verdict


class ReviewForm(forms.Form):
    verdict = forms.ChoiceField(choices=Verdict.choices, widget=forms.RadioSelect)
    rationale = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 4}),
        max_length=20_000,
        help_text="Always required: it is what the implementer (and the audit trail) reads.",
    )


class GateDecisionForm(forms.Form):
    verdict = forms.ChoiceField(choices=GateVerdict.choices, widget=forms.RadioSelect)
    rationale = forms.CharField(widget=forms.Textarea(attrs={"rows": 4}), max_length=20_000)
