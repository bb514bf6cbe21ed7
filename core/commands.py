"""The twin's chat commands: their names, who may use them, and how a message is parsed into one."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class CommandSpec:
    """A command as users see it in /help and in platform command menus."""

    name: str
    usage: str
    summary: str
    owner_only: bool


COMMANDS: tuple[CommandSpec, ...] = (
    CommandSpec("help", "/help", "what the twin can do", owner_only=False),
    CommandSpec("status", "/status", "whether the twin and its model are up", owner_only=False),
    CommandSpec("introduce", "/introduce [NAME]", "introduce the owner (to NAME, or to you)", owner_only=False),
    CommandSpec("ask", "/ask EXPERT QUESTION", "relay a question to an expert model with the owner's context",
                owner_only=True),
    CommandSpec("remember", "/remember [private:|contacts:|public:] TEXT",
                "remember a fact about the owner (private unless a level is given)", owner_only=True),
    CommandSpec("profile", "/profile", "the owner's profile, as far as you may see it", owner_only=False),
    CommandSpec("facts", "/facts", "the facts the twin keeps about the owner, with ids", owner_only=True),
    CommandSpec("visibility", "/visibility FACT_ID private|contacts|public", "who may see a fact",
                owner_only=True),
    CommandSpec("forget", "/forget WHAT", "show what matches, then forget it everywhere on /forget yes",
                owner_only=True),
    CommandSpec("retrain", "/retrain", "train the owner's personal model again on what the twin knows now",
                owner_only=True),
    CommandSpec("autoreply", "/autoreply on|off|draft", "answer messages sent to the owner on their behalf "
                "(or draft answers for approval), or stop",
                owner_only=True),
)
BY_NAME = {spec.name: spec for spec in COMMANDS}


@dataclass(frozen=True)
class CommandCall:
    """A parsed command: its name (lowercase, without the slash) and the text after it."""

    name: str
    args: str


def parse_command(text: str) -> CommandCall | None:
    """'/ask@twin_bot gpt why?' -> CommandCall('ask', 'gpt why?'); None when the text is not a command."""
    stripped = text.strip()
    if not stripped.startswith("/") or len(stripped) < 2 or not stripped[1].isalpha():
        return None
    head, _, args = stripped[1:].partition(" ")
    name = head.split("@", 1)[0].lower()  # Telegram appends @botname in groups
    return CommandCall(name=name, args=args.strip())


def help_text(owner_name: str, is_owner: bool, available: set[str] | None = None) -> str:
    """The commands this speaker may use (of those this deployment handles)."""
    lines = [f"I am {owner_name}'s twin. Talk to me, or use a command:"]
    lines += [f"{spec.usage} - {spec.summary}" for spec in COMMANDS
              if (is_owner or not spec.owner_only) and (available is None or spec.name in available)]
    return "\n".join(lines)
