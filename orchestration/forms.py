from django import forms

MAX_UPLOAD_BYTES = 5 * 1024 * 1024


class PlanUploadForm(forms.Form):
    document = forms.FileField(
        help_text="A .json, .yaml/.yml or .md plan: operations, or a phases/milestones/tasks "
        "outline."
    )
    base_version = forms.IntegerField(widget=forms.HiddenInput, min_value=1)

    def clean_document(self):
        document = self.cleaned_data["document"]
        if document.size > MAX_UPLOAD_BYTES:
            raise forms.ValidationError("The file is larger than 5 MB.")
        return document


class ChangesetApplyForm(forms.Form):
    rebase = forms.BooleanField(
        required=False,
        help_text="Apply even if the plan moved since this changeset was made, if it still "
        "validates.",
    )
