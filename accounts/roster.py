"""Class rosters: a CSV of students becomes accounts and group memberships, from the command line
(`import_roster`) or the admin (upload, preview, confirm). Both call `import_roster()` below.

Rules:
- The file has a header row naming its columns: `username`, `name`, `email`, `group` (Chinese headers such
  as 用户名 / 学号, 姓名, 邮箱, 班级 / 组 work too); only `username` is required, other columns are ignored.
  Encodings: UTF-8 with or without BOM, UTF-16 with BOM (Excel's "Unicode text"), otherwise GB18030 (Excel
  on Chinese Windows). Delimiter: comma, tab or semicolon, whichever the header line uses most. A `group`
  cell may name several groups separated by `;`.
- A new username makes a new account with an unusable password (the student sets one through a link) and
  the groups it names, created if missing; `--group` adds every row to one more group.
- An existing account is someone else's, and its row is skipped, when its name or e-mail address is set and
  differs from the row's, or when it is a staff account or holds a staff role (a roster never touches staff).
- A roster names classes and teams, never a staff role (`accounts.roles`): a row naming a role's group is
  skipped, and a role as the group for everyone stops the import. Otherwise the row
  fills in a missing name or e-mail and adds missing memberships: "updated", or "unchanged" when there was
  nothing to do. Nothing is ever removed, and a password is never changed, so running a file twice changes
  nothing the second time.
- A row is also skipped when its username breaks the username rule (`accounts.usernames`) or belonged to a
  deleted account (retired), repeats an earlier row, or its e-mail address is invalid or belongs to another
  account or row.
- Everything happens in one transaction; a dry run does all of it, reports, and rolls back.
- An import (not a dry run) is one entry in the record of who did what: by whom, the counts per status, the
  groups made, never the file.
"""

from __future__ import annotations

import codecs
import csv
import io
from dataclasses import dataclass, field

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import IntegrityError, transaction
from django.utils.translation import gettext as _

from accounts import roles, usernames
from audit.kinds import Kind
from audit.records import record

CREATED, UPDATED, UNCHANGED, SKIPPED = "created", "updated", "unchanged", "skipped"
STATUSES = (CREATED, UPDATED, UNCHANGED, SKIPPED)
MAX_ROWS = 5000
GROUP_SEPARATORS = (";", "；")

HEADERS = {
    "username": {"username", "user", "login", "用户名", "账号", "帐号", "学号"},
    "name": {"name", "full name", "姓名", "名字"},
    "email": {"email", "e-mail", "mail", "邮箱", "电子邮件", "电子邮箱"},
    "group": {"group", "groups", "team", "class", "组", "分组", "小组", "班级"},
}


class RosterError(Exception):
    """The file as a whole cannot be read (encoding, header); the message says what to fix."""


@dataclass
class Row:
    line: int
    username: str
    name: str = ""
    email: str = ""
    groups: list[str] = field(default_factory=list)
    status: str = ""
    # Skipped rows: why (a code for tests and a sentence for people). Others: what changed.
    code: str = ""
    message: str = ""
    user: object = None

    def skip(self, code: str, message: str) -> None:
        self.status, self.code, self.message = SKIPPED, code, message


@dataclass
class Report:
    rows: list[Row]
    dry_run: bool
    groups_created: list[str] = field(default_factory=list)
    # Accounts a set-password link should go to: new ones, and older imported ones never used yet.
    link_users: list = field(default_factory=list)

    def count(self, status: str) -> int:
        return sum(1 for row in self.rows if row.status == status)

    @property
    def counts(self) -> dict[str, int]:
        return {status: self.count(status) for status in STATUSES}

    @property
    def changed(self) -> bool:
        return bool(self.count(CREATED) or self.count(UPDATED) or self.groups_created)


def decode(data: bytes) -> str:
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        try:
            return data.decode("utf-16")
        except UnicodeDecodeError:
            raise RosterError(_("The file is neither UTF-8 nor GB18030 text. Save it from Excel as CSV.")) from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        pass
    try:
        return data.decode("gb18030")
    except UnicodeDecodeError:
        raise RosterError(_("The file is neither UTF-8 nor GB18030 text. Save it from Excel as CSV.")) from None


def _squeeze(value: str) -> str:
    return " ".join(str(value or "").split())


def _same_name(a: str, b: str) -> bool:
    # "张 三" and "张三", "Li Lei" and "li  lei" are the same person's name.
    return "".join(a.split()).casefold() == "".join(b.split()).casefold()


def parse(text: str) -> list[Row]:
    text = text.lstrip("\ufeff")
    first = next((line for line in text.splitlines() if line.strip()), "")
    if not first:
        raise RosterError(_("The file is empty."))
    delimiter = max(("\t", ",", ";"), key=first.count)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    header = []
    for cells in reader:
        if any(cell.strip() for cell in cells):
            header = [_squeeze(cell).casefold() for cell in cells]
            break
    columns = {}
    for index, title in enumerate(header):
        for key, names in HEADERS.items():
            if title in names and key not in columns:
                columns[key] = index
    if "username" not in columns:
        raise RosterError(
            _("The first row must name the columns: username, name, email, group (found: %(found)s).")
            % {"found": ", ".join(header)}
        )

    def cell(cells, key):
        index = columns.get(key)
        return cells[index].strip() if index is not None and index < len(cells) else ""

    rows = []
    for cells in reader:
        if not any(c.strip() for c in cells):
            continue
        groups = cell(cells, "group")
        for separator in GROUP_SEPARATORS:
            groups = groups.replace(separator, GROUP_SEPARATORS[0])
        rows.append(
            Row(
                line=reader.line_num,
                username=usernames.normalize(cell(cells, "username")),
                name=_squeeze(cell(cells, "name")),
                email=cell(cells, "email"),
                groups=[_squeeze(g) for g in groups.split(GROUP_SEPARATORS[0]) if g.strip()],
            )
        )
        if len(rows) > MAX_ROWS:
            raise RosterError(_("A roster can have at most %(max)d rows; split the file.") % {"max": MAX_ROWS})
    return rows


def read(data: bytes) -> list[Row]:
    return parse(decode(data))


class _Importer:
    def __init__(self, extra_group: str | None):
        self.User = get_user_model()
        self.extra_group = _squeeze(extra_group) if extra_group else ""
        self.role_names = set(roles.role_groups().values_list("name", flat=True))
        if self.extra_group in self.role_names:
            raise RosterError(
                _("“%(name)s” is a staff role, not a class or team; choose another name.") % {"name": self.extra_group}
            )
        self.groups: dict[str, Group] = {}
        self.groups_created: list[str] = []
        self.seen_usernames: dict[str, int] = {}
        self.seen_emails: dict[str, int] = {}

    def group(self, name: str) -> Group:
        if name not in self.groups:
            self.groups[name], created = Group.objects.get_or_create(name=name)
            if created:
                self.groups_created.append(name)
        return self.groups[name]

    def check(self, row: Row, user) -> bool:
        """Skip the row (and return False) if it cannot be applied; `user` is the existing account or None."""
        try:
            usernames.UsernameValidator()(row.username)
        except ValidationError as exc:
            row.skip("invalid_username", _("Invalid username: %(reason)s") % {"reason": " ".join(exc.messages)})
            return False
        if row.username in self.seen_usernames:
            row.skip(
                "duplicate",
                _("Same username as line %(line)d of the file.") % {"line": self.seen_usernames[row.username]},
            )
            return False
        self.seen_usernames[row.username] = row.line
        if user is None:
            try:
                usernames.check_not_retired(row.username)
            except ValidationError as exc:
                row.skip("retired", " ".join(exc.messages))
                return False
        if len(row.name) > self.User._meta.get_field("first_name").max_length:
            row.skip("invalid_name", _("The name is too long."))
            return False
        if any(len(g) > Group._meta.get_field("name").max_length for g in row.groups):
            row.skip("invalid_group", _("A group name is too long."))
            return False
        if roles_named := [g for g in row.groups if g in self.role_names]:
            row.skip(
                "role_group",
                _("“%(name)s” is a staff role, not a class or team; choose another name.") % {"name": roles_named[0]},
            )
            return False
        if row.email:
            try:
                validate_email(row.email)
            except ValidationError:
                row.skip("invalid_email", _("Invalid e-mail address: %(email)s") % {"email": row.email})
                return False
        if user is not None:
            if user.is_staff or user.is_superuser or any(g.name in self.role_names for g in user.groups.all()):
                row.skip("staff", _("This username belongs to a staff account; rosters never change staff."))
                return False
            full_name = user.get_full_name()
            if row.name and full_name and not _same_name(row.name, full_name):
                row.skip(
                    "taken",
                    _("Taken by someone else: the existing account with this username is named %(name)s.")
                    % {"name": full_name},
                )
                return False
            if row.email and user.email and row.email.casefold() != user.email.casefold():
                row.skip(
                    "taken",
                    _("Taken by someone else: the existing account with this username has the e-mail %(email)s.")
                    % {"email": user.email},
                )
                return False
        if row.email:
            email = row.email.casefold()
            if email in self.seen_emails:
                row.skip(
                    "email_taken",
                    _("Same e-mail address as line %(line)d of the file.") % {"line": self.seen_emails[email]},
                )
                return False
            self.seen_emails[email] = row.line
            other = self.User.objects.filter(email__iexact=row.email).exclude(username=row.username).first()
            if other is not None:
                row.skip(
                    "email_taken",
                    _("The e-mail address is already used by the account %(username)s.") % {"username": other},
                )
                return False
        return True

    def apply(self, row: Row, user) -> None:
        wanted = [*row.groups, *([self.extra_group] if self.extra_group else [])]
        if user is None:
            user = self.User(username=row.username, first_name=row.name, email=row.email)
            user.set_unusable_password()
            try:
                with transaction.atomic():  # a savepoint: the rest of the file goes on
                    user.save()
            except IntegrityError:
                # Someone signed up with this name after the lookup above.
                row.skip("taken", _("Taken by someone else: this username was just taken."))
                return
            row.status, row.user = CREATED, user
            for name in dict.fromkeys(wanted):
                user.groups.add(self.group(name))
            row.message = ", ".join(dict.fromkeys(wanted))
            return
        changes, fields = [], []
        if row.name and not user.get_full_name():
            user.first_name, user.last_name = row.name, ""
            fields += ["first_name", "last_name"]
            changes.append(_("name"))
        if row.email and not user.email:
            user.email = row.email
            fields.append("email")
            changes.append(_("e-mail"))
        if fields:
            user.save(update_fields=fields)
        member_of = {g.name for g in user.groups.all()}
        for name in dict.fromkeys(wanted):
            if name not in member_of:
                user.groups.add(self.group(name))
                changes.append(_("joined %(group)s") % {"group": name})
        row.user = user
        row.status = UPDATED if changes else UNCHANGED
        row.message = ", ".join(str(c) for c in changes)


def import_roster(rows: list[Row], *, extra_group: str | None = None, dry_run: bool = False, by=None) -> Report:
    """Apply parsed rows (see the module rules) and report on each; nothing is saved when `dry_run`. `by`: the
    staff member importing (None from the command line)."""
    importer = _Importer(extra_group)
    User = importer.User
    with transaction.atomic():
        existing = {
            user.username: user
            for user in User.objects.filter(username__in=[r.username for r in rows]).prefetch_related("groups")
        }
        for row in rows:
            user = existing.get(row.username)
            if importer.check(row, user):
                importer.apply(row, user)
        link_users = [
            row.user
            for row in rows
            if row.status == CREATED
            or (
                row.status in (UPDATED, UNCHANGED)
                and not row.user.has_usable_password()
                and row.user.last_login is None
                and row.user.is_active
            )
        ]
        report = Report(rows=rows, dry_run=dry_run, groups_created=importer.groups_created, link_users=link_users)
        if dry_run:
            transaction.set_rollback(True)
        else:
            record(
                Kind.ROSTER_IMPORTED,
                actor=by,
                rows=len(rows),
                **report.counts,
                groups_created=report.groups_created,
                group=importer.extra_group or None,
            )
    return report
