"""The one error the install planner raises for invalid or impossible requests."""

from __future__ import annotations


class PlanError(ValueError):
    """An invalid or impossible request, with the nearest valid choice.

    ``install-cmd`` prints ``message`` as one error line and ``nearest_valid`` as the hint,
    then exits with code 2 and nothing on stdout.
    """

    def __init__(
        self, message: str, nearest_valid: str | None = None, hints: tuple[str, ...] = ()
    ) -> None:
        super().__init__(message)
        self.message = message
        self.nearest_valid = nearest_valid
        self.hints = hints
        """Further hint lines, e.g. the pip command when conda has no package."""

    def to_jsonable(self) -> dict[str, object]:
        """The error as JSON (``errors[]`` of the ``--json`` envelope)."""
        return {
            "code": "impossible_request",
            "message": self.message,
            "nearest_valid": self.nearest_valid,
            "hints": list(self.hints),
        }
