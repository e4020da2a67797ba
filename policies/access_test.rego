# Unit tests for access.rego.
#
# Each test calls access.decide with a literal request document: rego-cpp cannot run
# `with input as`, and a pure function needs no mocking. Documents are varied with
# one-level object.union calls only, because rego-cpp's object.union does not merge
# nested objects the way OPA's does.
package kiteline.access_test

import rego.v1

import data.kiteline.access

# 2026-11-24T02:00:00Z: Tuesday 10:00 in Shanghai.
tue_1000_shanghai := 1795485600000000000

# 2026-11-23T23:59:00Z and 2026-11-24T00:00:00Z: Tuesday 07:59 and 08:00 in Shanghai.
tue_0759_shanghai := 1795478340000000000

tue_0800_shanghai := 1795478400000000000

purpose := "surgical robot training"

partner := {"name": "mei", "kind": "partner", "status": "active", "org": "surgibot", "org_status": "active"}

employee := {"name": "li", "kind": "employee", "status": "active", "org": null, "org_status": null}

grant := {
	"id": 3,
	"subject": "org:surgibot",
	"module": "imaging",
	"dataset": null,
	"profile": "anonymized",
	"purpose": purpose,
	"approvals": 2,
	"row_cap": 10000,
	"row_filter": [{"column": "city", "op": "=", "value": "Beijing"}],
	"window": null,
}

office_hours := {
	"days": ["mon", "tue", "wed", "thu", "fri"],
	"start": "08:00",
	"end": "20:00",
	"timezone": "Asia/Shanghai",
}

base := {
	"principal": partner,
	"action": "read",
	"dataset": {"name": "patients", "module": "imaging"},
	"request": {"purpose": purpose, "profile": null, "now": "2026-11-24T02:00:00Z", "now_ns": tue_1000_shanghai},
	"grants": [grant],
	"held_modules": ["imaging"],
	"separation": {"max_modules_per_principal": 3, "exclusive": [["imaging", "crm"]]},
}

principal(changes) := object.union(base, {"principal": object.union(partner, changes)})

as_employee(doc) := object.union(doc, {"principal": employee})

request(doc, changes) := object.union(doc, {"request": object.union(doc.request, changes)})

grants(doc, list) := object.union(doc, {"grants": list})

granted(changes) := object.union(grant, changes)

decide(doc) := access.decide(doc)

# --- allow, and what it obliges ---------------------------------------------------------

test_partner_with_a_matching_grant_reads_anonymized if {
	d := decide(base)
	d.allow
	d.reasons == ["allowed under grant 3 with the 'anonymized' profile"]
	d.obligations == {
		"profile": "anonymized",
		"grant_id": 3,
		"row_filters": [{"column": "city", "op": "=", "value": "Beijing"}],
		"row_cap": 10000,
		"purpose_required": true,
		"purposes": [purpose],
	}
}

test_deny_by_default if {
	d := decide({})
	not d.allow
	count(d.reasons) > 0
	d.obligations.profile == null
	d.obligations.grant_id == null
	d.obligations.row_filters == []
}

# --- who may read at all ------------------------------------------------------------------

test_departed_principal_gets_nothing if {
	d := decide(principal({"status": "departed"}))
	not d.allow
	"principal 'mei' has departed and receives no data" in d.reasons
}

test_suspended_principal_gets_nothing if {
	d := decide(principal({"status": "suspended"}))
	not d.allow
	"principal 'mei' is suspended and receives no data" in d.reasons
}

test_member_of_a_suspended_org_gets_nothing if {
	d := decide(principal({"org_status": "suspended"}))
	not d.allow
	d.reasons == ["organization 'surgibot' is suspended; its members receive no data"]
}

test_officers_and_admins_govern_and_do_not_read if {
	raw_grant := granted({"profile": "raw", "purpose": null})
	officer := object.union(base, {"principal": object.union(employee, {"kind": "officer"}), "grants": [raw_grant]})
	d := decide(officer)
	not d.allow
	d.reasons == ["officers govern access and do not read data (separation of duties)"]
	admin := object.union(officer, {"principal": object.union(employee, {"kind": "admin"})})
	a := decide(admin)
	not a.allow
	a.reasons == ["admins govern access and do not read data (separation of duties)"]
}

test_unknown_kind_is_refused if {
	d := decide(principal({"kind": "robot"}))
	not d.allow
	"principal kind 'robot' may not read data" in d.reasons
}

test_only_reads_are_granted if {
	d := decide(object.union(base, {"action": "write"}))
	not d.allow
	d.reasons == ["action 'write' is not granted here; grants cover 'read' only"]
}

# --- which grants apply -------------------------------------------------------------------

test_no_grant_no_data if {
	d := decide(grants(base, []))
	not d.allow
	d.reasons == ["no active grant covers dataset 'patients' in module 'imaging'"]
}

test_a_grant_on_another_dataset_does_not_apply if {
	d := decide(grants(base, [granted({"dataset": "scans"})]))
	not d.allow
	d.reasons == ["no active grant covers dataset 'patients' in module 'imaging'"]
}

test_a_grant_on_the_dataset_applies if {
	decide(grants(base, [granted({"dataset": "patients"})])).allow
}

test_a_grant_on_another_module_does_not_apply if {
	not decide(grants(base, [granted({"module": "crm"})])).allow
}

# --- profiles and ceilings ----------------------------------------------------------------

test_employee_reads_raw_with_two_approvals if {
	d := decide(grants(as_employee(base), [granted({"profile": "raw"})]))
	d.allow
	d.obligations.profile == "raw"
}

test_raw_with_one_approval_is_served_pseudonymized if {
	d := decide(grants(as_employee(base), [granted({"profile": "raw", "approvals": 1})]))
	d.allow
	d.obligations.profile == "pseudonymized"
	"grant 3 has 1 approval(s) and raw needs 2, so it is served as 'pseudonymized'" in d.reasons
}

test_asking_for_raw_with_one_approval_is_refused if {
	doc := grants(as_employee(base), [granted({"profile": "raw", "approvals": 1})])
	d := decide(request(doc, {"profile": "raw"}))
	not d.allow
	"the raw profile needs a grant approved by at least 2 custodians; grant 3 has 1" in d.reasons
	"the request asked for the 'raw' profile; the usable grants allow at most 'pseudonymized'" in d.reasons
}

test_a_raw_grant_is_capped_for_partners if {
	d := decide(grants(base, [granted({"profile": "raw"})]))
	d.allow
	d.obligations.profile == "anonymized"
	"partners never receive the raw profile; grant 3 is served as 'anonymized'" in d.reasons
}

test_a_raw_grant_is_capped_for_alumni if {
	d := decide(grants(principal({"kind": "alumni", "org": null, "org_status": null}), [granted({"profile": "raw"})]))
	d.allow
	d.obligations.profile == "anonymized"
	"alumni never receive the raw profile; grant 3 is served as 'anonymized'" in d.reasons
}

test_partners_asking_for_raw_are_refused if {
	d := decide(request(grants(base, [granted({"profile": "raw"})]), {"profile": "raw"}))
	not d.allow
	d.reasons == ["partners never receive the raw profile"]
}

test_alumni_asking_for_raw_are_refused if {
	alumni := principal({"kind": "alumni", "org": null, "org_status": null})
	d := decide(request(alumni, {"profile": "raw"}))
	not d.allow
	"alumni never receive the raw profile" in d.reasons
}

test_service_principals_are_capped_at_pseudonymized if {
	service := object.union(base, {"principal": object.union(employee, {"kind": "service"})})
	d := decide(grants(service, [granted({"profile": "raw", "purpose": null})]))
	d.allow
	d.obligations.profile == "pseudonymized"
	"service principals receive at most the 'pseudonymized' profile; grant 3 is served as 'pseudonymized'" in d.reasons
	asked := decide(request(grants(service, [granted({"profile": "raw", "purpose": null})]), {"profile": "raw"}))
	not asked.allow
	"service principals receive at most the 'pseudonymized' profile; the request asked for 'raw'" in asked.reasons
}

test_asking_for_less_than_allowed_is_served if {
	d := decide(request(grants(as_employee(base), [granted({"profile": "raw"})]), {"profile": "aggregate"}))
	d.allow
	d.obligations.profile == "aggregate"
}

test_asking_for_more_than_the_grants_allow_is_refused if {
	d := decide(request(grants(base, [granted({"profile": "aggregate"})]), {"profile": "anonymized"}))
	not d.allow
	d.reasons == ["the request asked for the 'anonymized' profile; the usable grants allow at most 'aggregate'"]
}

test_an_unknown_profile_is_refused if {
	d := decide(request(base, {"profile": "bogus"}))
	not d.allow
	"unknown profile 'bogus'; expected one of aggregate, anonymized, pseudonymized, raw" in d.reasons
}

test_a_grant_naming_an_unknown_profile_is_unusable if {
	d := decide(grants(base, [granted({"profile": "secret"})]))
	not d.allow
	"grant 3 names an unknown profile 'secret'" in d.reasons
}

# --- purposes -------------------------------------------------------------------------------

test_partners_must_state_a_purpose if {
	d := decide(request(base, {"purpose": null}))
	not d.allow
	d.reasons == ["a grant for purpose 'surgical robot training' is required; the request stated no purpose"]
}

test_an_empty_purpose_is_no_purpose if {
	not decide(request(base, {"purpose": ""})).allow
}

test_partners_must_state_the_grants_purpose if {
	d := decide(request(base, {"purpose": "marketing"}))
	not d.allow
	d.reasons == ["grant 3 is for purpose 'surgical robot training'; the request stated 'marketing'"]
}

test_a_grant_without_purpose_does_not_serve_partners if {
	d := decide(grants(base, [granted({"purpose": null})]))
	not d.allow
	d.reasons == ["grant 3 has no purpose; partners may only use a grant issued for a stated purpose"]
}

test_a_grant_without_purpose_does_not_serve_alumni if {
	alumni := principal({"kind": "alumni", "org": null, "org_status": null})
	d := decide(grants(alumni, [granted({"purpose": null})]))
	not d.allow
	"grant 3 has no purpose; alumni may only use a grant issued for a stated purpose" in d.reasons
}

test_employees_need_no_purpose_for_an_open_grant if {
	d := decide(request(grants(as_employee(base), [granted({"purpose": null})]), {"purpose": null}))
	d.allow
	d.obligations.purpose_required == false
	d.obligations.purposes == []
}

test_employees_stating_a_purpose_may_use_an_open_grant if {
	decide(grants(as_employee(base), [granted({"purpose": null})])).allow
}

test_employees_must_match_a_grants_purpose if {
	doc := as_employee(base)
	decide(doc).allow
	missing := decide(request(doc, {"purpose": null}))
	not missing.allow
	missing.reasons == ["a grant for purpose 'surgical robot training' is required; the request stated no purpose"]
	other := decide(request(doc, {"purpose": "marketing"}))
	not other.allow
	other.reasons == ["grant 3 is for purpose 'surgical robot training'; the request stated 'marketing'"]
}

# --- time windows ----------------------------------------------------------------------------

test_window_opens_at_0800_shanghai if {
	doc := grants(base, [granted({"window": office_hours})])
	early := decide(request(doc, {"now_ns": tue_0759_shanghai}))
	not early.allow
	early.reasons == ["grant 3 may be used only mon,tue,wed,thu,fri 08:00-20:00 (Asia/Shanghai); it is now tue 07:59 there"]
	decide(request(doc, {"now_ns": tue_0800_shanghai})).allow
}

test_window_falls_back_to_the_rfc3339_time if {
	doc := grants(base, [granted({"window": office_hours})])
	decide(request(doc, {"now_ns": null, "now": "2026-11-24T00:00:00Z"})).allow
	not decide(request(doc, {"now_ns": null, "now": "2026-11-23T23:59:00Z"})).allow
}

test_window_without_a_request_time_is_closed if {
	doc := grants(base, [granted({"window": office_hours})])
	d := decide(request(doc, {"now_ns": null, "now": null}))
	not d.allow
	d.reasons == ["grant 3 is limited to mon,tue,wed,thu,fri 08:00-20:00 (Asia/Shanghai) and the request carries no time"]
}

# --- separation of modules ---------------------------------------------------------------------

test_too_many_modules_are_refused if {
	d := decide(object.union(base, {"held_modules": ["imaging", "labels", "genomics", "notes"]}))
	not d.allow
	d.reasons == ["the principal holds grants on 4 modules (genomics, imaging, labels, notes); at most 3 may be held at once"]
}

test_exclusive_modules_are_refused if {
	d := decide(object.union(base, {"held_modules": ["imaging", "crm"]}))
	not d.allow
	d.reasons == ["modules 'crm' and 'imaging' may not be held together (separation of duties)"]
}

# --- several grants, several denials -------------------------------------------------------------

test_the_most_revealing_usable_grant_sets_the_obligations if {
	narrow := granted({"id": 4, "profile": "aggregate", "row_cap": null, "row_filter": null})
	wide := granted({"id": 5, "profile": "pseudonymized", "row_cap": 50, "row_filter": [{"column": "site", "op": "=", "value": "A"}]})
	d := decide(grants(as_employee(base), [narrow, wide]))
	d.allow
	d.obligations.grant_id == 5
	d.obligations.profile == "pseudonymized"
	d.obligations.row_cap == 50
	d.obligations.row_filters == [{"column": "site", "op": "=", "value": "A"}]
}

test_equal_grants_resolve_to_the_first if {
	d := decide(grants(base, [granted({"id": 7}), granted({"id": 8})]))
	d.obligations.grant_id == 7
}

test_an_unusable_grant_does_not_block_a_usable_one if {
	closed := granted({"id": 9, "profile": "raw", "window": office_hours})
	d := decide(request(grants(as_employee(base), [closed, grant]), {"now_ns": tue_0759_shanghai}))
	d.allow
	d.obligations.grant_id == 3
	d.obligations.profile == "anonymized"
}

test_a_null_row_filter_obliges_no_filter if {
	d := decide(grants(base, [granted({"row_filter": null, "row_cap": null})]))
	d.obligations.row_filters == []
	d.obligations.row_cap == null
}

test_any_deny_wins_and_every_reason_is_given if {
	doc := object.union(principal({"status": "departed", "org_status": "suspended"}), {"held_modules": ["imaging", "crm"]})
	d := decide(request(doc, {"purpose": null}))
	not d.allow
	d.reasons == [
		"a grant for purpose 'surgical robot training' is required; the request stated no purpose",
		"modules 'crm' and 'imaging' may not be held together (separation of duties)",
		"organization 'surgibot' is suspended; its members receive no data",
		"principal 'mei' has departed and receives no data",
	]
	d.obligations.purposes == [purpose]
	d.obligations.purpose_required == true
}

test_an_unusable_grant_before_the_chosen_one_does_not_shift_the_choice if {
	unknown := granted({"id": 8, "profile": "secret", "row_cap": 1})
	d := decide(grants(base, [unknown, grant]))
	d.allow
	d.obligations.grant_id == 3
	d.obligations.row_cap == 10000
}
