"""Several Convocore accounts (or regions) in one deployment: which one a conversation is in,
and each one's client.

`[convocore]` is the default account; each `[convocore.accounts.NAME]` has its own base_url,
token, rate limit and circuit breaker (bridge/store/lua/gate.lua), so one account's outage
does not hold back another's conversations. A conversation is in the account listing its
agent id (`agents`), else the account of the source its changes came from (`account` on the
source), else the default. With no accounts configured nothing changes: the shared circuit
and `[delivery] rate_limit_per_s` alone (take.lua).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from bridge.config import AccountSettings, ConvocoreSettings, Settings
from bridge.store import Work
from workers.convocore import Convocore

DEFAULT = "default"  # the [convocore] table's account, in gate keys and logs


@dataclass(frozen=True, slots=True)
class Account:
    name: str
    client: Convocore
    rate_limit_per_s: float


class Accounts:
    def __init__(self, settings: Settings, *, timeout_s: float) -> None:
        cc = settings.convocore
        self.gated = bool(cc.accounts)  # each account its own circuit and rate limit
        self.default = Account(DEFAULT, Convocore(cc, timeout_s=timeout_s), 0.0)
        self.named = {
            name: Account(
                name, Convocore(_as_convocore(cc, a), timeout_s=timeout_s), a.rate_limit_per_s
            )
            for name, a in cc.accounts.items()
        }
        self.by_agent = {agent: name for name, a in cc.accounts.items() for agent in a.agents}
        self.by_source = {
            name: src.account for name, src in settings.sources.items() if src.account
        }

    def of(self, work: Work) -> Account:
        agent, _ = work.ids
        name = self.by_agent.get(agent)
        if name is None:
            name = next(
                (self.by_source[e.source] for e in work.entries if e.source in self.by_source),
                None,
            )
        return self.named[name] if name is not None else self.default

    async def close(self) -> None:
        await self.default.client.close()
        for account in self.named.values():
            await account.client.close()


def _as_convocore(default: ConvocoreSettings, account: AccountSettings) -> ConvocoreSettings:
    """An account's connection settings in the shape the client takes (its own URL and
    token; the bridge-wide choices, such as time_unit, stay the default table's)."""
    return replace(
        default,
        base_url=str(account.base_url),
        token_env=str(account.token_env),
        token=account.token,
        sandbox=account.sandbox,
        accounts={},
    )
