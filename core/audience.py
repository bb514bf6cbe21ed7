"""Who is speaking: the owner (by platform ids from settings or accounts linked to the owner), a contact or a
stranger. Nothing a message says about itself changes the answer."""

from __future__ import annotations

from collections.abc import Iterable

from storage.people import PeopleDirectory, Speaker


def owner_accounts(owner_ids: Iterable[str]) -> frozenset[str]:
    """Settings' owner ids, each either 'platform:id' or a bare id that counts on every platform."""
    return frozenset(str(value) for value in owner_ids)


class AudienceResolver:
    """Maps a platform account to a speaker with a trust level."""

    def __init__(self, people: PeopleDirectory, twin_id: int, owner_name: str, owner_ids: frozenset[str]) -> None:
        self.people = people
        self.twin_id = twin_id
        self.owner_name = owner_name
        self.owner_ids = owner_ids

    def is_owner(self, platform: str, sender_id: str) -> bool:
        """Whether the account is one of the owner's (settings' owner ids; never what a message claims)."""
        return sender_id in self.owner_ids or f"{platform}:{sender_id}" in self.owner_ids

    def owns(self, platform: str, account: str) -> bool:
        """Whether the account is the owner's: by settings' ids, or linked to the owner (`twin people link owner`).
        Every adapter asks this (who may decide drafts, whose business connection counts), never its own list."""
        return self.identify(platform, account, "").trust == "owner"

    def identify(self, platform: str, sender_id: str, sender_name: str) -> Speaker:
        """The owner, a contact or a stranger; a new account is a stranger."""
        if self.is_owner(platform, sender_id):
            return Speaker(person_id=None, name=self.owner_name, trust="owner")
        known = self.people.by_identity(self.twin_id, platform, sender_id)
        if known is None:
            return Speaker(person_id=None, name=sender_name, trust="stranger")
        return known

    def audience_of(self, name_or_id: str) -> Speaker:
        """The person named, for whom something is composed (an introduction); unknown names are strangers."""
        found = self.people.find(self.twin_id, name_or_id)
        return found or Speaker(person_id=None, name=name_or_id.lstrip("@"), trust="stranger")
