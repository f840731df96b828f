"""SMTP transport (smtplib): STARTTLS or implicit TLS, optional login, one connection reused.

Replies are sorted the way RFC 5321 means them: 4xx is temporary, 5xx permanent; a dropped or
refused connection and a timeout are temporary. The MAIL/RCPT/DATA steps are driven one by one
(not `sendmail`) to keep the server's final reply, which names its queue id, and each RCPT's
reply: a recipient the server refuses is returned in the receipt, temporary or permanent, while
the message goes to the others (RFC 5321 3.3: the server takes the message for the recipients it
accepted).
"""

from __future__ import annotations

import logging
import smtplib
import ssl
from collections.abc import Sequence

from ..config import SmtpSecurity, SmtpSettings
from .transport import PermanentFailure, Receipt, Refusal, TemporaryFailure

log = logging.getLogger(__name__)

# Without a SIZE announcement, stay under what common relays take (Exchange Online, Gmail: 25 MB
# or more after encoding).
DEFAULT_LIMIT = 25_000_000


def _failure(code: int, text: bytes | str, step: str) -> TemporaryFailure | PermanentFailure:
    reply = text.decode("utf-8", "replace") if isinstance(text, bytes) else text
    message = f"SMTP {step}: {code} {reply}".strip()
    if 400 <= code < 500:
        return TemporaryFailure(message)
    return PermanentFailure(message)


class SmtpTransport:
    name = "smtp"

    def __init__(
        self,
        settings: SmtpSettings,
        *,
        ssl_context: ssl.SSLContext | None = None,
        max_bytes: int | None = None,
    ) -> None:
        # Only the host, port and credentials are kept: the settings object is not logged.
        self._settings = settings
        self._context = ssl_context
        self._max_bytes = max_bytes
        self._smtp: smtplib.SMTP | None = None

    def _connect(self) -> smtplib.SMTP:
        s = self._settings
        context = self._context or ssl.create_default_context()
        smtp: smtplib.SMTP
        if s.security is SmtpSecurity.TLS:
            smtp = smtplib.SMTP_SSL(s.host, s.port, timeout=s.timeout_seconds, context=context)
        else:
            smtp = smtplib.SMTP(s.host, s.port, timeout=s.timeout_seconds)
        try:
            smtp.ehlo_or_helo_if_needed()
            if s.security is SmtpSecurity.STARTTLS:
                smtp.starttls(context=context)
                smtp.ehlo()
            if s.username and s.password is not None:
                smtp.login(s.username, s.password.get_secret_value())
        except BaseException:
            smtp.close()
            raise
        return smtp

    def _connection(self) -> smtplib.SMTP:
        if self._smtp is None:
            try:
                self._smtp = self._connect()
            except smtplib.SMTPResponseException as exc:
                raise _failure(exc.smtp_code, exc.smtp_error, "connect") from exc
            except smtplib.SMTPNotSupportedError as exc:
                # e.g. STARTTLS configured and the server does not offer it: a setup problem.
                raise PermanentFailure(f"SMTP connect: {exc}") from exc
            except (smtplib.SMTPException, OSError) as exc:
                raise TemporaryFailure(f"SMTP connect: {type(exc).__name__}: {exc}") from exc
        return self._smtp

    def limit(self) -> int | None:
        if self._max_bytes is not None:
            return self._max_bytes
        announced = self._connection().esmtp_features.get("size", "")
        return int(announced) if announced.isdigit() and int(announced) > 0 else DEFAULT_LIMIT

    def send(self, raw: bytes, sender: str, recipients: Sequence[str], name: str) -> Receipt:
        if not recipients:
            raise PermanentFailure("no recipient")
        smtp = self._connection()
        try:
            return self._transaction(smtp, raw, sender, recipients)
        except (TemporaryFailure, PermanentFailure):
            self.close()
            raise
        except smtplib.SMTPResponseException as exc:
            self.close()
            raise _failure(exc.smtp_code, exc.smtp_error, "send") from exc
        except (smtplib.SMTPException, OSError) as exc:
            # Dropped connections, timeouts, TLS errors: the next attempt reconnects.
            self.close()
            raise TemporaryFailure(f"SMTP send: {type(exc).__name__}: {exc}") from exc

    def _transaction(
        self, smtp: smtplib.SMTP, raw: bytes, sender: str, recipients: Sequence[str]
    ) -> Receipt:
        options = [f"size={len(raw)}"] if smtp.has_extn("size") else []
        code, reply = smtp.mail(sender, options)
        if code != 250:
            raise _failure(code, reply, "MAIL FROM")
        refused: list[Refusal] = []
        for address in recipients:
            code, reply = smtp.rcpt(address)
            if code not in (250, 251):
                text = reply.decode("utf-8", "replace")
                refused.append(Refusal(address, 400 <= code < 500, f"SMTP RCPT TO: {code} {text}"))
        if len(refused) == len(recipients):
            # Nobody to send to: no DATA, and the connection stays usable.
            smtp.rset()
            return Receipt("", tuple(refused))
        code, reply = smtp.data(raw)
        if code != 250:
            raise _failure(code, reply, "DATA")
        if refused:
            log.warning("SMTP server refused some recipients: %s", [r.address for r in refused])
        return Receipt(reply.decode("utf-8", "replace"), tuple(refused))

    def close(self) -> None:
        smtp, self._smtp = self._smtp, None
        if smtp is None:
            return
        try:
            smtp.quit()
        except (smtplib.SMTPException, OSError):
            smtp.close()
