"""The username rule is enforced once, in the model layer, and reaches every path that creates users."""

import pytest
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.utils import translation

from accounts import usernames
from accounts.forms import AdminUserCreationForm

User = get_user_model()


@pytest.mark.parametrize(
    ("raw", "normalised"),
    [
        ("Alice", "alice"),
        ("  BOB_01 ", "bob_01"),
        ("ｃａｒｏｌ", "carol"),  # full-width letters fold to ASCII (NFKC)
        ("ÄBC", "äbc"),  # folded, then refused by the validator below
        (None, ""),
    ],
)
def test_usernames_are_normalised_before_checking(raw, normalised):
    assert usernames.normalize(raw) == normalised


@pytest.mark.parametrize("name", ["abc", "a-b", "a_b", "student-01", "x" * 32, "9lives"])
def test_valid_usernames_pass(name):
    usernames.UsernameValidator()(name)


@pytest.mark.parametrize(
    ("name", "code"),
    [
        ("ab", "too_short"),
        ("", "too_short"),
        ("x" * 33, "too_long"),
        ("-dash", "invalid"),
        ("_under", "invalid"),
        ("has space", "invalid"),
        ("äbc", "invalid"),
        ("аdmin", "invalid"),  # Cyrillic а: a look-alike, not ASCII
        ("dot.name", "invalid"),
        ("semi;colon", "invalid"),
        ("admin", "reserved"),
        ("root", "reserved"),
        ("jovyan", "reserved"),
        ("jupyterhub", "reserved"),
        ("api", "reserved"),
        ("static", "reserved"),
        ("user", "reserved"),
        ("system", "reserved"),
    ],
)
def test_invalid_usernames_are_refused_with_their_own_reason(name, code):
    with pytest.raises(ValidationError) as exc:
        usernames.UsernameValidator()(name)
    assert exc.value.code == code


def test_model_save_folds_case(db):
    user = User.objects.create_user(username="MiXeD-Case", password="x")
    user.refresh_from_db()
    assert user.username == "mixed-case"


def test_model_save_refuses_a_reserved_name_even_without_a_form(db):
    with pytest.raises(ValidationError):
        User.objects.create_user(username="Admin", password="x")
    assert not User.objects.exists()


def test_login_lookup_is_case_insensitive(db):
    User.objects.create_user(username="dora", password="pw-Analysis-42")
    assert User.objects.get_by_natural_key("DORA").username == "dora"


@pytest.mark.parametrize(("name", "ok"), [("NewStudent", True), ("admin", False), ("bad name", False)])
def test_admin_creation_form_applies_the_same_rule(db, name, ok):
    form = AdminUserCreationForm(
        data={"username": name, "password1": "pw-Analysis-42", "password2": "pw-Analysis-42", "usable_password": "true"}
    )
    assert form.is_valid() is ok, form.errors
    if ok:
        assert form.save().username == name.lower()
    else:
        assert "username" in form.errors


def test_admin_creation_form_refuses_a_case_variant_of_an_existing_name(db):
    User.objects.create_user(username="erin", password="x")
    form = AdminUserCreationForm(
        data={
            "username": "ERIN",
            "password1": "pw-Analysis-42",
            "password2": "pw-Analysis-42",
            "usable_password": "true",
        }
    )
    assert not form.is_valid()
    assert "username" in form.errors


def test_createsuperuser_refuses_a_reserved_name(db):
    from django.core.management import call_command
    from django.core.management.base import CommandError

    with pytest.raises(CommandError):
        call_command("createsuperuser", username="root", email="", interactive=False, verbosity=0)
    assert not User.objects.exists()


@pytest.mark.parametrize("name", ["张三", "学生一号", "张", "a b", "li.lei", "ab!"])
def test_a_name_with_other_characters_is_told_which_are_allowed_whatever_its_length(name):
    with translation.override("en"):
        with pytest.raises(ValidationError) as exc:
            usernames.UsernameValidator()(name)
        message = exc.value.messages[0]
    assert exc.value.code == "invalid"
    assert "a-z, 0-9, '-' and '_'" in message and "at least" not in message


@pytest.mark.django_db
def test_sign_up_tells_a_chinese_username_only_a_z_0_9_dash_and_underscore_are_allowed(client, signup_data):
    form = client.post("/accounts/signup/", signup_data(username="张三")).context["form"]
    assert form.errors["username"] == ["用户名只能使用 a-z、0-9、“-”和“_”（不能有汉字、空格或其他符号）。"]
