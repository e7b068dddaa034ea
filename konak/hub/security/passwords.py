"""Password hashing (argon2id) and the password policy."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from konak.hub.security.errors import SecurityError

logger = logging.getLogger(__name__)

# The most common passwords of the public breach lists that are long enough to pass a length
# check; a deployment adds its own list with auth.common_passwords_file.
COMMON_PASSWORDS: Final = frozenset(
    {
        "123456789012",
        "1234567890123",
        "12345678910",
        "1q2w3e4r5t6y",
        "1qaz2wsx3edc",
        "aaaaaaaaaaaa",
        "abc123456789",
        "abcdefghijkl",
        "changeme1234",
        "iloveyou1234",
        "letmein12345",
        "passw0rd1234",
        "password1234",
        "password12345",
        "password123!",
        "qwerty123456",
        "qwertyuiop12",
        "qwertyuiopasdf",
        "welcome12345",
        "administrator",
        "correcthorsebatterystaple",
    }
)


class PasswordRejected(SecurityError):
    """A new password breaks the policy."""

    code = "weak_password"


@dataclass(frozen=True, slots=True)
class PasswordPolicy:
    """Minimum length and a list of refused common passwords."""

    min_length: int
    common: frozenset[str] = COMMON_PASSWORDS
    max_length: int = 1024

    @classmethod
    def load(cls, min_length: int, common_file: Path | None) -> PasswordPolicy:
        """The policy with the built-in list plus one password per line of ``common_file``."""
        common = set(COMMON_PASSWORDS)
        if common_file is not None:
            lines = common_file.read_text(errors="replace").splitlines()
            common.update(line.strip().lower() for line in lines if line.strip())
        return cls(min_length, frozenset(common))

    def check(self, password: str, *, email: str = "") -> None:
        """Raise PasswordRejected with the reason when ``password`` is not acceptable."""
        if len(password) < self.min_length:
            raise PasswordRejected(f"a password needs at least {self.min_length} characters")
        if len(password) > self.max_length:
            raise PasswordRejected(f"a password has at most {self.max_length} characters")
        lowered = password.lower()
        if lowered in self.common or len(set(lowered)) < 4:
            raise PasswordRejected("this password is too common")
        local = email.split("@", 1)[0].lower()
        if len(local) >= 4 and local in lowered:
            raise PasswordRejected("a password may not contain the e-mail name")


class Hasher:
    """argon2id hashes; ``needs_rehash`` lets stronger parameters apply at the next login."""

    def __init__(self, *, time_cost: int = 3, memory_cost_kib: int = 64 * 1024) -> None:
        from argon2 import PasswordHasher, Type

        self._hasher = PasswordHasher(
            time_cost=time_cost, memory_cost=memory_cost_kib, type=Type.ID
        )
        # Verified against when the user does not exist, so both paths cost the same.
        self._dummy = self._hasher.hash("konak-dummy-password")

    def hash(self, password: str) -> str:
        """An argon2id hash string (parameters and salt included)."""
        return self._hasher.hash(password)

    def verify(self, hashed: str | None, password: str) -> bool:
        """Whether ``password`` matches; ``hashed=None`` costs the same and is False."""
        from argon2.exceptions import InvalidHashError, VerificationError

        try:
            self._hasher.verify(hashed or self._dummy, password)
        except (VerificationError, InvalidHashError):
            return False
        return hashed is not None

    def needs_rehash(self, hashed: str) -> bool:
        """Whether the hash was made with other parameters than the current ones."""
        return self._hasher.check_needs_rehash(hashed)
