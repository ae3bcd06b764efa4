"""Users (admins): who may sign in as what; add, change role, deactivate, reactivate, unlock, new password.

Every rule lives in lockstep/services/users.py (require("user.manage"), the last active
admin, the password policy, the audit entry); this page only collects the input and shows
the service's answer.
"""

from __future__ import annotations

import streamlit as st

from lockstep.db import write_session
from lockstep.errors import LockstepError
from lockstep.labels import role_label
from lockstep.models import ROLES
from lockstep.queries import users as q
from lockstep.services.users import (
    MIN_PASSWORD_LENGTH,
    add_user,
    deactivate_user,
    reactivate_user,
    set_password,
    set_role,
    unlock_user,
)
from lockstep.ui.data import clear_after_write, engine, run_query
from lockstep.ui.safe import md
from lockstep.ui.session import ROLE_LABELS, current_actor

FLASH = "users_flash"
PASSWORDS_DIFFER = "The two passwords differ: type the same new password twice."

actor = current_actor()
st.title("Users")
st.caption(
    "A role change, a deactivation or a new password ends every open session of that user: "
    "they sign in again on the new terms."
)
if flash := st.session_state.pop(FLASH, None):
    st.success(flash)


def apply(service, flash: str, **kwargs) -> None:
    """Run one user service as the signed-in admin; show its refusal, or rerun with the flash."""
    try:
        with write_session(engine()) as session:
            service(session=session, actor=actor, **kwargs)
    except LockstepError as exc:
        st.error(str(exc))
        return
    clear_after_write()
    st.session_state[FLASH] = flash
    st.rerun()


# Uncached: an admin acts on what this shows, so it must be the table as it is now.
users = run_query(q.users_overview, actor=actor)
st.dataframe(
    # Roles in words; widths that fit beside the sidebar at 1280 pixels (e2e layout test).
    users.assign(role=users["role"].map(role_label)),
    hide_index=True,
    width="stretch",
    column_config={
        "email": st.column_config.TextColumn("E-mail", width=185),
        "name": st.column_config.TextColumn("Name", width=110),
        "role": st.column_config.TextColumn("Role", width=110),
        "active": st.column_config.CheckboxColumn("Active", width=55),
        "last_sign_in": st.column_config.DatetimeColumn("Last sign-in", format="YYYY-MM-DD HH:mm", width=120,
                                                        help="UTC"),
        "locked_until": st.column_config.DatetimeColumn("Locked until", format="YYYY-MM-DD HH:mm", width=120,
                                                        help="UTC"),
        "failed_sign_ins": st.column_config.NumberColumn("Failures", width=55, help="Failed sign-ins"),
        "open_sessions": st.column_config.NumberColumn("Sessions", width=55, help="Open sessions"),
    },
    key="users_table",
)

# --- one user ----------------------------------------------------------------------------------
st.subheader("Change a user")
email = st.selectbox("User", list(users["email"]), key="users_pick")
if email is not None:
    row = users.set_index("email").loc[email]
    who = md(email)
    role_col, state_col = st.columns(2)
    with role_col:
        new_role = st.selectbox(
            "Role", ROLES, index=ROLES.index(row["role"]), format_func=lambda r: ROLE_LABELS.get(r, r),
            key=f"users_role_{email}",
        )
        if st.button("Change role", key="users_set_role", disabled=new_role == row["role"]):
            apply(set_role, f"{who} is now {ROLE_LABELS[new_role]}.", email=email, role=new_role)
    with state_col:
        st.text("Active" if row["active"] else "Deactivated")
        if row["active"]:
            if st.button("Deactivate", key="users_deactivate", icon=":material/person_off:"):
                apply(deactivate_user, f"{who} can no longer sign in.", email=email)
        elif st.button("Reactivate", key="users_reactivate", icon=":material/person_check:"):
            apply(reactivate_user, f"{who} can sign in again.", email=email)
        locked = row["locked_until"] is not None or row["failed_sign_ins"] > 0
        if st.button("Unlock", key="users_unlock", icon=":material/lock_open:", disabled=not locked):
            apply(unlock_user, f"{who} is unlocked: the next right password gets in.", email=email)
    with st.form("users_password", clear_on_submit=True):
        st.text(f"New password for {email} (at least {MIN_PASSWORD_LENGTH} characters)")
        first = st.text_input("New password", type="password", max_chars=1024, key="users_pw1",
                              autocomplete="new-password")
        second = st.text_input("New password again", type="password", max_chars=1024, key="users_pw2",
                               autocomplete="new-password")
        set_it = st.form_submit_button("Set password")
    if set_it:
        if first != second:
            st.error(PASSWORDS_DIFFER)
        else:
            apply(set_password, f"{who} has a new password.", email=email, password=first)

# --- a new user --------------------------------------------------------------------------------
st.subheader("Add a user")
with st.form("users_add", clear_on_submit=True):
    c1, c2, c3 = st.columns(3)
    new_email = c1.text_input("E-mail", max_chars=254, key="users_new_email")
    new_name = c2.text_input("Name", max_chars=200, key="users_new_name")
    role = c3.selectbox("Role", ROLES, format_func=lambda r: ROLE_LABELS.get(r, r), key="users_new_role")
    c4, c5 = st.columns(2)
    pw1 = c4.text_input("Password", type="password", max_chars=1024, key="users_new_pw1",
                        autocomplete="new-password")
    pw2 = c5.text_input("Password again", type="password", max_chars=1024, key="users_new_pw2",
                        autocomplete="new-password")
    add = st.form_submit_button("Add user", type="primary")
if add:
    if pw1 != pw2:
        st.error(PASSWORDS_DIFFER)
    else:
        apply(add_user, f"{md(new_email.strip().lower())} added as {ROLE_LABELS[role]}.",
              email=new_email, role=role, password=pw1, display_name=new_name)
