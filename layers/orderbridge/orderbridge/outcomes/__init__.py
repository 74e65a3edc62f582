"""The outcome table: the record of every order at every destination."""

from orderbridge.outcomes.store import Claim, OutcomeStore

__all__ = ["Claim", "OutcomeStore"]
