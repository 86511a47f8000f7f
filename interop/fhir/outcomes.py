"""OperationOutcome: how /fhir says what was wrong (and where, as FHIRPath expressions)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Issue:
    diagnostics: str
    expression: tuple[str, ...] = ()
    code: str = "invalid"  # http://hl7.org/fhir/issue-type
    severity: str = "error"

    def as_dict(self) -> dict:
        data = {"severity": self.severity, "code": self.code, "diagnostics": self.diagnostics}
        if self.expression:
            data["expression"] = list(self.expression)
        return data


def operation_outcome(issues: list[Issue]) -> dict:
    return {"resourceType": "OperationOutcome", "issue": [issue.as_dict() for issue in issues]}


@dataclass
class FhirError(Exception):
    """A request /fhir refuses: the HTTP status and the issues of its OperationOutcome."""

    status: int
    issues: list[Issue] = field(default_factory=list)

    @classmethod
    def one(cls, status: int, diagnostics: str, *expression: str, code: str = "invalid"):
        return cls(status, [Issue(diagnostics, tuple(expression), code)])

    def outcome(self) -> dict:
        return operation_outcome(self.issues)
