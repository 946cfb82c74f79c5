from tascade.errors import DomainError


class ApiKeyRevoked(DomainError):
    code = "API_KEY_REVOKED"
    default_message = "This API key is already revoked."


class SelfReview(DomainError):
    code = "SELF_REVIEW"
    default_message = "Nobody may review work they implemented."


class GateNotPassable(DomainError):
    code = "GATE_NOT_PASSABLE"
    default_message = "A gate cannot pass while a candidate is not implemented."
