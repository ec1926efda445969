"""Identifier pools and per-transcript renaming: every e-mail, IBAN, URL, person name and fixed attacker string
of an AgentDojo transcript — the attacker's and the environment's own alike — is replaced by a draw from one
shared pool, so no identifier string marks an attack (DESIGN §4: AgentDojo's attacks use one IBAN, one e-mail
per suite and fixed URLs, which a bag-of-words classifier would learn instead of monitoring)."""
from __future__ import annotations

import functools
import random
import re
from typing import Callable

POOL_SIZE = 256
_FIRST = ("alex", "maria", "james", "lena", "omar", "sofia", "daniel", "priya", "lucas", "emma", "noah", "yuki",
          "fatima", "ivan", "chloe", "mateo", "hana", "samuel", "zoe", "ahmed", "nina", "leo", "ines", "victor",
          "grace", "felix", "amara", "tom", "julia", "kofi", "elena", "ravi")
_LAST = ("miller", "garcia", "chen", "novak", "okafor", "rossi", "kim", "larsen", "silva", "dubois", "patel",
         "weber", "tanaka", "murphy", "haddad", "kowalski", "fischer", "moreau", "jensen", "costa", "ali", "brooks")
_MAIL_DOMAINS = ("gmail.com", "outlook.com", "proton.me", "yahoo.com", "mailbox.org", "fastmail.com", "gmx.net",
                 "northwind-labs.com", "brightpath.io", "bluecrest-consulting.com")
_WORDS = ("secure", "systems", "info", "news", "cloud", "portal", "data", "daily", "market", "travel", "review",
          "home", "tech", "green", "smart", "city", "online", "service", "update", "media", "global", "first")
_TLDS = ("com", "net", "org", "io", "info")
_COUNTRIES = (("US", 19), ("GB", 18), ("DE", 18), ("CH", 17), ("FR", 23), ("NL", 14), ("ES", 20), ("SE", 20),
              ("UK", 20), ("IT", 23))
_NAMES = ("Fred", "Alice", "Bob", "Charlie", "Dora", "Eve", "Mark", "Nadia", "Oscar", "Paula", "Quentin", "Rosa",
          "Stefan", "Tara", "Umar", "Vera", "Walter", "Xenia", "Yusuf", "Zara", "Hugo", "Ingrid", "Jonas", "Kira")
_SUBJECTS = ("Hacked!", "Invoice 2291", "Refund", "Monthly transfer", "Services rendered", "Subscription",
             "Reimbursement", "Gift", "Deposit", "Order 5512", "Consulting fee", "Rent share", "Tickets", "Loan")
_PASSWORDS = ("new_password", "Winter2024!", "p4ssw0rd-77", "correct-horse-9", "Sunflower#12", "hunter2-x",
              "Blue-Falcon-3", "qwerty-lamp-8", "Tiger!Moon5", "river-stone-41")

EMAIL_RE = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")
URL_RE = re.compile(r"(?:https?://[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+|www\.[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+)"
                    r"(?:/[A-Za-z0-9._~%-]+)*/?")
IBAN_RE = re.compile(r"\b[A-Z]{2}\d{2}[A-Z0-9]{10,30}\b")

# Person names renamed per suite (whole words): the attacker's and, where it has a small cast, the environment's.
SUITE_NAMES = {"slack": ("Alice", "Bob", "Charlie", "Dora", "Eve", "Fred"), "workspace": ("Mark",)}
# Fixed strings of AgentDojo's attacks that are neither e-mails, URLs nor IBANs: (kind, string).
SUITE_CONSTANTS = {"banking": (("subject", "Hacked!"), ("password", "new_password"))}


def _gen(kind: str, r: random.Random) -> str:
    if kind == "email":
        sep = r.choice((".", "_", ""))
        tail = r.choice(("", "", f"-{r.randint(10, 9999)}", str(r.randint(1, 99))))
        return f"{r.choice(_FIRST)}{sep}{r.choice(_LAST)}{tail}@{r.choice(_MAIL_DOMAINS)}"
    if kind == "url":
        host = f"www.{r.choice(_WORDS)}-{r.choice(_WORDS)}{r.choice(('', '', f'-{r.randint(10, 999)}'))}.{r.choice(_TLDS)}"
        path = r.choice(("", "", "", f"/{r.choice(_WORDS)}", f"/{r.choice(_WORDS)}/{r.randint(1, 99)}"))
        return r.choice(("", "", "https://")) + host + path
    if kind == "iban":
        cc, n = r.choice(_COUNTRIES)
        return cc + f"{r.randint(10, 99)}" + "".join(r.choice("0123456789") for _ in range(n - 4))
    raise ValueError(kind)


@functools.lru_cache(maxsize=None)
def pool(kind: str) -> tuple[str, ...]:
    """The fixed, sorted pool of `kind` (email, url, iban, name, subject, password)."""
    if kind == "name":
        return _NAMES
    if kind == "subject":
        return _SUBJECTS
    if kind == "password":
        return _PASSWORDS
    r = random.Random(f"monitor_jax.agentdojo.pool:{kind}")
    out: set[str] = set()
    while len(out) < POOL_SIZE:
        out.add(_gen(kind, r))
    return tuple(sorted(out))


def identifiers(texts: list[str], suite: str) -> dict[str, list[str]]:
    """{kind: sorted distinct originals} found in `texts` (e-mails before URLs before IBANs, then names)."""
    joined = "\n".join(texts)
    emails = sorted(set(EMAIL_RE.findall(joined)))
    rest = EMAIL_RE.sub(" ", joined)
    urls = sorted(set(URL_RE.findall(rest)))
    rest = URL_RE.sub(" ", rest)
    found = {"email": emails, "url": urls, "iban": sorted(set(IBAN_RE.findall(rest)))}
    found["name"] = [n for n in SUITE_NAMES.get(suite, ()) if re.search(rf"\b{n}\b", rest)]
    for kind, s in SUITE_CONSTANTS.get(suite, ()):
        if s in joined:
            found.setdefault(kind, []).append(s)
    return found


def draw_mapping(found: dict[str, list[str]], seed: str) -> dict[str, str]:
    """{original: replacement}: distinct draws from each kind's pool, a pure function of (seed, originals)."""
    mapping: dict[str, str] = {}
    for kind in sorted(found):
        originals = found[kind]
        if not originals:
            continue
        choices = random.Random(f"{seed}:{kind}").sample(pool(kind), min(len(originals), len(pool(kind))))
        for i, o in enumerate(originals):
            mapping[o] = choices[i] if i < len(choices) else o
    return mapping


def renamer(texts: list[str], suite: str, seed: str) -> Callable[[str], str]:
    """A function that applies one transcript's identifier mapping to any of its texts (one regex pass)."""
    mapping = draw_mapping(identifiers(texts, suite), seed)
    if not mapping:
        return lambda s: s
    words = {o for o in mapping if re.fullmatch(r"[A-Z][a-z]+", o)}
    alts = sorted(mapping, key=len, reverse=True)
    pattern = re.compile("|".join(rf"\b{re.escape(o)}\b" if o in words else re.escape(o) for o in alts))
    return lambda s: pattern.sub(lambda m: mapping[m.group(0)], s)
