"""A demo vault with fictional users and records, for trying gpshare out and for training.

Every name, address and NHS number here is invented; the NHS numbers are from the 999
test range, which is never issued to patients.
"""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gpshare.clock import Clock, SystemClock, today
from gpshare.store.crypto import KdfParams

if TYPE_CHECKING:
    from gpshare.services import Session

DEMO_USERS: list[dict[str, Any]] = [
    {
        "username": "admin",
        "name": "Morgan Hale",
        "role": "admin",
        "gmc": None,
        "password": "demo-admin-pass",
    },
    {
        "username": "lead",
        "name": "Dr Ruth Adebayo",
        "role": "lead",
        "gmc": "7000001",
        "password": "demo-lead-pass",
    },
    {
        "username": "drpatel",
        "name": "Dr Anil Patel",
        "role": "clinician",
        "gmc": "7000002",
        "password": "demo-gp-pass",
    },
    {
        "username": "drowen",
        "name": "Dr Siân Owen",
        "role": "clinician",
        "gmc": "7000003",
        "password": "demo-gp-pass-2",
    },
]
DEMO_PRACTICE = {
    "practice_address": "12 Orchard Lane, Exampleton EX1 2AB",
    "practice_ods_code": "Z99999",
    "practice_phone": "01632 960000",
    "practice_secure_email": "orchard.safeguarding@nhs.net",
}


def _monitor_case(on: str) -> dict[str, Any]:
    return {
        "nhs_number": "999 000 0018",
        "child_given_name": "Tomasz",
        "child_family_name": "Wiśniewski",
        "date_of_birth": "2019-06-02",
        "gender": "male",
        "address": "Flat 4, 20 Mill Road, Exampleton",
        "parents_carers": [
            {"name": "Ewa Wiśniewska", "relationship": "mother", "parental_responsibility": True}
        ],
        "immediate_danger": False,
        "concern_narrative": "Missed two dental appointments and one asthma review since the summer; inhaler not collected for 3 months.",
        "concern_source": ["records"],
        "categories": ["neglect"],
        "threshold_view": "below_threshold",
        "advice_sought": True,
        "advisor_name": "Dr Ruth Adebayo",
        "advisor_role": "practice_safeguarding_lead",
        "advice_date": on,
        "advice_anonymised": True,
        "advice_summary": "Below threshold; offer support and review.",
        "decision": "monitor",
        "reasons_not_sharing": "Isolated missed appointments; mother engaged when contacted and rebooked.",
        "review_date": "2030-01-15",
        "support_offered": "Asthma nurse call arranged; repeat prescription reissued.",
        "child_local_authority": "Exampleton Council",
        "csc_status": "not_open",
        "cpis_checked": "no_flag",
        "parental_factors": ["none_known"],
        "child_views": "Chatty and well in clinic; says he likes school and his asthma is fine.",
    }


def _referral_case(on: str) -> dict[str, Any]:
    return {
        "nhs_number": "9990000026",
        "child_given_name": "Maisie",
        "child_family_name": "Holt",
        "date_of_birth": "2023-02-11",
        "gender": "female",
        "address": "7 Quarry Close, Exampleton",
        "parents_carers": [
            {
                "name": "Dean Holt",
                "relationship": "father",
                "parental_responsibility": True,
                "address": "7 Quarry Close, Exampleton",
                "phone": "07700 900456",
            }
        ],
        "immediate_danger": False,
        "concern_narrative": "Seen with a scald to the left forearm, 2 days old, not brought for treatment. Explanation changed during the consultation.",
        "concern_opinion": "The delay and the changing account are concerning for inflicted injury or neglect.",
        "concern_source": ["observed", "disclosed_by_parent"],
        "categories": ["physical", "neglect"],
        "threshold_view": "significant_harm",
        "advice_sought": True,
        "advisor_name": "Dr Ruth Adebayo",
        "advisor_role": "practice_safeguarding_lead",
        "advice_date": on,
        "advice_anonymised": False,
        "advice_summary": "Refer today.",
        "decision": "refer_csc",
        "consent_subject": "parent_with_pr",
        "consent_sought": True,
        "consent_outcome": "given",
        "consent_given_by": "Dean Holt (father)",
        "consent_scope": "The injury, the explanation given and relevant health history, to Exampleton children's services.",
        "explained_to_person": [
            "why",
            "benefit",
            "what",
            "with_whom",
            "how_used",
            "may_share_anyway",
        ],
        "consent_date": on,
        "parents_informed": "before",
        "parents_informed_detail": "Dean Holt (father), in person",
        "child_informed": "not_appropriate_age",
        "child_local_authority": "Exampleton Council",
        "csc_status": "not_open",
        "cpis_checked": "no_flag",
        "parental_factors": ["none_known"],
        "child_views": "Too young to give views; she was quiet and flinched when her arm was examined.",
        "child_whereabouts_safety": "At home with her father tonight; no immediate danger known.",
        "risks_to_visiting_staff": "None known.",
        "lawful_basis_art6": "public_task",
        "condition_art9": "health_social_care",
        "recipient_type": "csc",
        "recipient_name": "Exampleton Children's Services — Front Door",
        "method": "secure_email",
        "included_items": ["child_identity", "parent_identities", "reasons", "health_information"],
    }


def add_new_user(
    admin: Session, username: str, full_name: str, role: str, gmc_number: str | None = None
) -> str:
    """Add a user as an admin does, with a random initial password (returned); the user
    must choose their own at first sign-in (see choose_own_password)."""
    initial = secrets.token_urlsafe(18)
    admin.users.add_user(username, full_name, role, initial, gmc_number)
    return initial


def choose_own_password(
    folder: Path, clock: Clock, username: str, initial: str, password: str
) -> None:
    """Sign in as a new user with their initial password and choose `password` (the first
    sign-in step every new user goes through), so demo and test logins are the users' own.
    The vault must not be open in another session (it is single-instance)."""
    from gpshare.services import open_session

    user = open_session(folder, username, initial, clock)
    try:
        user.users.change_password(initial, password)
    finally:
        user.close()


# The format of the demo vault the app and `gpshare demo` make: version 2 (keys that enforce
# roles; the lead's records search runs on lead-index.db, narratives included). `gpshare demo
# --v1` makes a version-1 one.
DEMO_FORMAT = 2


def create_demo_vault(
    folder: Path,
    clock: Clock | None = None,
    kdf: KdfParams | None = None,
    format_version: int = DEMO_FORMAT,
) -> dict[str, Any]:
    """Create a vault with demo users (passwords returned) and a few fictional records.

    Version 2: the lead is appointed at creation (as `init --lead`), each clinician chooses
    their own password (publishing their key) and the lead confirms their six words, and the
    break-glass code is returned too, to practise the ceremony."""
    from gpshare.services import open_session

    clock = clock or SystemClock()
    if format_version == 2:
        made = _demo_users_v2(folder, clock, kdf)
    else:
        made = _demo_users_v1(folder, clock, kdf)
    on = today(clock).isoformat()
    gp = open_session(folder, "drpatel", "demo-gp-pass", clock)
    try:
        for answers in (_monitor_case(on), _referral_case(on)):
            record = gp.assessments.start_assessment(answers=answers)
            gp.assessments.complete(record.id)
        draft = gp.assessments.start_assessment(
            answers={"child_given_name": "Leo", "child_family_name": "Grant"}
        )
        gp.assessments.save_draft(draft.id, draft.answers, "child")
    finally:
        gp.close()
    return {
        "vault": str(folder),
        "format_version": format_version,
        **made,
        "users": [
            {"username": u["username"], "role": u["role"], "password": u["password"]}
            for u in DEMO_USERS
        ],
    }


def _demo_users_v2(folder: Path, clock: Clock, kdf: KdfParams | None) -> dict[str, str]:
    """The demo users on a version-2 vault; returns its two recovery secrets."""
    from gpshare.services import LeadAtInit, create_vault_v2, open_session

    first = next(u for u in DEMO_USERS if u["role"] == "admin")
    lead = next(u for u in DEMO_USERS if u["role"] == "lead")
    others = [u for u in DEMO_USERS if u is not first and u is not lead]
    created = create_vault_v2(
        folder,
        practice_name="Orchard Lane Medical Practice (DEMO)",
        admin_username=first["username"],
        admin_full_name=str(first["name"]),
        admin_password=str(first["password"]),
        lead=LeadAtInit(
            str(lead["username"]), str(lead["name"]), str(lead["password"]), lead["gmc"]
        ),
        clock=clock,
        kdf=kdf,
    )
    admin = created.session
    try:
        admin.practice.update_settings(DEMO_PRACTICE)
        initial = {
            str(user["username"]): add_new_user(
                admin, str(user["username"]), str(user["name"]), str(user["role"]), user["gmc"]
            )
            for user in others
        }
    finally:
        admin.close()
    typed: dict[str, str] = {}
    for user in others:
        name = str(user["username"])
        choose_own_password(folder, clock, name, initial[name], str(user["password"]))
        own_session = open_session(folder, name, str(user["password"]), clock)
        try:
            own = own_session.directory.own_key()
            if own is not None:
                typed[name] = own.fingerprint  # the words they would read to the lead
        finally:
            own_session.close()
    confirming = open_session(folder, str(lead["username"]), str(lead["password"]), clock)
    try:
        for name, words in typed.items():
            confirming.directory.confirm(name, words)
    finally:
        confirming.close()
    return {"recovery_code": created.recovery_code, "breakglass_code": created.breakglass_code}


def _demo_users_v1(folder: Path, clock: Clock, kdf: KdfParams | None) -> dict[str, str]:
    """The demo users on a version-1 vault; returns its recovery code."""
    from gpshare.services import create_vault

    first = DEMO_USERS[0]
    admin, recovery = create_vault(
        folder,
        practice_name="Orchard Lane Medical Practice (DEMO)",
        admin_username=first["username"],
        admin_full_name=str(first["name"]),
        admin_password=str(first["password"]),
        clock=clock,
        kdf=kdf,
    )
    try:
        admin.practice.update_settings(DEMO_PRACTICE)
        initial = {
            str(user["username"]): add_new_user(
                admin, str(user["username"]), str(user["name"]), str(user["role"]), user["gmc"]
            )
            for user in DEMO_USERS[1:]
        }
    finally:
        admin.close()
    for user in DEMO_USERS[1:]:
        name = str(user["username"])
        choose_own_password(folder, clock, name, initial[name], str(user["password"]))
    return {"recovery_code": recovery}
