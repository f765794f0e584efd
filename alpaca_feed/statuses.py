"""Trading status (``T: "s"``) messages: UTP status and reason codes with the texts Alpaca sends."""

from __future__ import annotations

from typing import Any

# UTP (tape C) status codes used by the feed.
HALT = "H"
RESUME = "T"
PAUSE = "P"
STATUS_MESSAGES = {
    "H": "Trading Halt",
    "Q": "Quotation Resumption",
    "T": "Trading Resumption",
    "P": "Volatility Trading Pause",
}

# UTP reason codes and their texts (Alpaca's docs, "Reason codes").
REASON_MESSAGES = {
    "T1": "Halt News Pending",
    "T2": "Halt News Dissemination",
    "T3": "News and Resumption Times",
    "T5": "Single Stock Trading Pause In Effect",
    "T6": "Regulatory Halt Extraordinary Market Activity",
    "T7": "Single Stock Trading Pause/Quotation-Only Period",
    "T8": "Halt ETF",
    "T12": "Trading Halted; For information requested by NASDAQ",
    "H4": "Halt Non Compliance",
    "H9": "Halt Filings Not Current",
    "H10": "Halt SEC Trading Suspension",
    "H11": "Halt Regulatory Concern",
    "O1": "Operations Halt, Contact Market Operations",
    "IPO1": "IPO Issue not yet Trading",
    "M1": "Corporate Action",
    "M2": "Quotation Not Available",
    "LUDP": "Volatility Trading Pause",
    "LUDS": "Volatility Trading Pause - Straddle Condition",
    "MWC0": "Market Wide Circuit Breaker Halt - Carry over from previous day",
    "MWC1": "Market Wide Circuit Breaker Halt - Level 1",
    "MWC2": "Market Wide Circuit Breaker Halt - Level 2",
    "MWC3": "Market Wide Circuit Breaker Halt - Level 3",
    "MWCQ": "Market Wide Circuit Breaker Resumption",
    "R4": "Qualifications Issues Reviewed/Resolved; Quotations/Trading to Resume",
    "R9": "Filing Requirements Satisfied/Resolved; Quotations/Trading To Resume",
    "C3": "Issuer News Not Forthcoming; Quotations/Trading To Resume",
    "C4": "Qualifications Halt ended; maint. Req. Met; Resume",
    "C9": "Qualifications Halt Concluded; Filings Met; Quotes/Trades To Resume",
    "C11": "Trade Halt Concluded By Other Regulatory Auth,; Quotes/Trades Resume",
    "R1": "New Issue Available",
    "R": "Issue Available",
    "IPOQ": "IPO security released for quotation",
    "IPOE": "IPO security - positioning window extension",
}
DEFAULT_HALT_REASON = "T1"
DEFAULT_RESUME_REASON = "T3"


def status_message(symbol: str, status: str, reason: str, t_ns: int, tape: str = "C") -> dict[str, Any]:
    """A trading status message with every field alpaca-py's ``TradingStatus`` requires."""
    if status not in STATUS_MESSAGES:
        raise ValueError(f"unknown status code {status!r}; known: {', '.join(STATUS_MESSAGES)}")
    if reason not in REASON_MESSAGES:
        raise ValueError(f"unknown reason code {reason!r}")
    return {
        "T": "s",
        "S": symbol,
        "sc": status,
        "sm": STATUS_MESSAGES[status],
        "rc": reason,
        "rm": REASON_MESSAGES[reason],
        "t": t_ns,
        "z": tape,
    }
