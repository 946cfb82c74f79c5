from tascade.errors import DomainError


class ApiKeyRevoked(DomainError):
    code = "API_KEY_REVOKED"
    default_message = "This API key is already revoked."


class SelfReview(DomainError):
    code = "SELF_REVIEW"
    default_message = "Nobody may review work they implemented."
