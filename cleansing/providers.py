"""What is known about mail providers and mailbox names, as data: free-mail domains, the common
domains that typos are measured against, and role mailboxes (RFC 2142 and the usual ones)."""

from __future__ import annotations

FREE_MAIL_DOMAINS = frozenset(
    {
        "gmail.com",
        "googlemail.com",
        "hotmail.com",
        "hotmail.se",
        "hotmail.co.uk",
        "outlook.com",
        "outlook.se",
        "live.com",
        "live.se",
        "msn.com",
        "yahoo.com",
        "yahoo.se",
        "yahoo.co.uk",
        "ymail.com",
        "icloud.com",
        "me.com",
        "mac.com",
        "aol.com",
        "gmx.com",
        "gmx.de",
        "gmx.net",
        "web.de",
        "protonmail.com",
        "proton.me",
        "pm.me",
        "mail.com",
        "zoho.com",
        "yandex.com",
        "yandex.ru",
        "telia.com",
        "comhem.se",
        "bredband.net",
        "spray.se",
        "tele2.se",
        "bahnhof.se",
        "passagen.se",
        "home.se",
        "swipnet.se",
        "tutanota.com",
        "fastmail.com",
    }
)

# Domains a typo is most likely a slip of.
COMMON_DOMAINS = (
    "gmail.com",
    "hotmail.com",
    "outlook.com",
    "yahoo.com",
    "icloud.com",
    "live.com",
    "live.se",
    "hotmail.se",
    "outlook.se",
    "yahoo.se",
    "telia.com",
    "comhem.se",
    "bredband.net",
    "googlemail.com",
    "msn.com",
    "aol.com",
    "gmx.com",
    "protonmail.com",
    "me.com",
    "spray.se",
    "tele2.se",
    "bahnhof.se",
)

# The providers whose name a slip of the keyboard turns into someone else's domain (``gmial.com``).
MAJOR_PROVIDERS = ("gmail", "googlemail", "hotmail", "outlook", "yahoo", "icloud", "protonmail")

# Words that make a handle a household's: ``familjen.berg``, ``family.smith``, ``bergsfamily``.
HOUSEHOLD_WORDS = ("familjen", "familj", "family", "familie", "familien", "famille", "familia", "fam")

ROLE_LOCAL_PARTS = frozenset(
    {
        # RFC 2142
        "info",
        "marketing",
        "sales",
        "support",
        "abuse",
        "noc",
        "security",
        "postmaster",
        "hostmaster",
        "usenet",
        "news",
        "webmaster",
        "www",
        "uucp",
        "ftp",
        # the usual ones, English and Swedish
        "admin",
        "administrator",
        "billing",
        "contact",
        "customerservice",
        "enquiries",
        "feedback",
        "hello",
        "help",
        "hr",
        "jobs",
        "careers",
        "mail",
        "media",
        "newsletter",
        "no-reply",
        "noreply",
        "do-not-reply",
        "donotreply",
        "office",
        "orders",
        "press",
        "privacy",
        "reception",
        "service",
        "team",
        "accounts",
        "accounting",
        "kontakt",
        "kundtjanst",
        "kundservice",
        "ekonomi",
        "faktura",
        "order",
        "info.se",
        "jobb",
        "kontoret",
        "post",
        "växel",
        "vaxel",
        "bokning",
    }
)

# Real mail domains a slip away from a major provider's name: never taken for typos.
NOT_TYPOS = FREE_MAIL_DOMAINS | {"email.com", "cloud.com"}
