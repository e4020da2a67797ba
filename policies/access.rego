# The fine-grained half of a kiteline decision.
#
# casbin has already found the grants that apply to this principal and dataset; this
# package decides whether any of them may be used right now, and under which
# obligations: the access profile, the row filters and the row cap the gateway must
# enforce. Nothing is allowed unless a grant is usable and no rule denies: any deny
# wins. Every deny carries a sentence the caller can act on.
#
# The gateway reads data.kiteline.access.decision; nothing else here is an interface.
#
# The decision is a pure function of the request document, decide(input). Tests call it
# with literal documents instead of `with input as`, which rego-cpp 1.5.2 cannot
# evaluate (it crashes at compile time, and `with` on rules costs seconds). The same text
# runs on OPA (v0.59 and later, v1) and rego-cpp, which shapes a few more choices:
# - sentences are joined with concat, not sprintf: rego-cpp's sprintf pastes strings
#   computed by other builtins with their JSON quotes;
# - sets are copied into arrays before sort: rego-cpp sorts a set into a set;
# - comprehensions never use `some i, x in`: rego-cpp's parser reads the comma as an
#   array separator;
# - values that cost something are bound inside rule bodies, because rego-cpp
#   evaluates the value of an `else` branch before its condition; and values used
#   twice are computed once in decide and passed down, because rego-cpp memoizes rules
#   but not function calls.
package kiteline.access

import rego.v1

import data.kiteline.separation
import data.kiteline.window

decision := decide(input)

# --- house rules ----------------------------------------------------------------------

# Least to most revealing.
ranks := {"aggregate": 0, "anonymized": 1, "pseudonymized": 2, "raw": 3}

profiles := ["aggregate", "anonymized", "pseudonymized", "raw"]

# The most each kind of principal may ever see. Officers and admins are absent on
# purpose: they govern access and audit it, and keeping them out of the data is what
# makes their review independent (separation of duties).
kind_ceiling := {
	"employee": "raw",
	"service": "pseudonymized",
	"alumni": "anonymized",
	"partner": "anonymized",
}

governing_kinds := {"officer", "admin"}

# People outside the company read only for the purpose a grant names.
purpose_bound_kinds := {"alumni", "partner"}

# Raw data is released on the word of two custodians, never one.
raw_min_approvals := 2

kind_plural := {
	"employee": "employees",
	"service": "service principals",
	"alumni": "alumni",
	"partner": "partners",
	"officer": "officers",
	"admin": "admins",
}

status_phrase := {"departed": "has departed", "suspended": "is suspended"}

# --- the decision ---------------------------------------------------------------------

decide(doc) := {
	"allow": allowed,
	"reasons": explain(req, best, rank, denials, allowed),
	"obligations": obligations(req, best, rank, allowed),
} if {
	req := read_request(doc)
	best := best_grant(req)
	rank := effective_rank(req, best)
	denials := denials_for(req, best)
	allowed := is_allowed(req, rank, denials)
}

# Allow only when every condition holds on its own terms and no rule denies; the
# denials carry the explanations.
is_allowed(req, rank, denials) := true if {
	count(denials) == 0
	rank >= 0
	req.status == "active"
	not org_inactive(req)
	req.ceiling != null
	req.action == "read"
	not raw_refused(req)
	separation.ok(req.held, req.separation)
} else := false

# --- the request, read once -----------------------------------------------------------

# Missing sections and fields read as empty or null, so a sparse document yields a
# deny, never an undefined decision.
read_request(doc) := {
	"name": object.get(principal, "name", "?"),
	"kind": kind,
	"status": object.get(principal, "status", null),
	"org": object.get(principal, "org", null),
	"org_status": object.get(principal, "org_status", null),
	"ceiling": object.get(kind_ceiling, kind, null),
	"purpose_bound": purpose_bound,
	"action": object.get(root, "action", null),
	"dataset": dataset,
	"purpose": stated_purpose(request),
	"requested": object.get(request, "profile", null),
	"now_ns": now_ns(request),
	"utc_offsets": object_or_empty(object.get(request, "utc_offsets", {})),
	"grants": [g | some g in array_or_empty(object.get(root, "grants", [])); covers(g, dataset)],
	"held": {m | some m in array_or_empty(object.get(root, "held_modules", []))},
	"separation": object_or_empty(object.get(root, "separation", {})),
} if {
	root := object_or_empty(doc)
	principal := object_or_empty(object.get(root, "principal", {}))
	kind := object.get(principal, "kind", null)
	purpose_bound := kind in purpose_bound_kinds
	request := object_or_empty(object.get(root, "request", {}))
	dataset := object_or_empty(object.get(root, "dataset", {}))
}

object_or_empty(x) := x if {
	is_object(x)
} else := {}

array_or_empty(x) := x if {
	is_array(x)
} else := []

# An empty purpose is no purpose.
stated_purpose(request) := p if {
	p := object.get(request, "purpose", null)
	is_string(p)
	p != ""
} else := null

now_ns(request) := ns if {
	ns := object.get(request, "now_ns", null)
	is_number(ns)
} else := ns if {
	is_string(request.now)
	ns := time.parse_rfc3339_ns(numeric_offset(request.now))
} else := null

# rego-cpp 1.5.2 parses "+00:00" but not the equivalent "Z" designator.
numeric_offset(t) := concat("", [substring(t, 0, count(t) - 1), "+00:00"]) if {
	upper(substring(t, count(t) - 1, 1)) == "Z"
} else := t

# casbin matched these grants already; they are narrowed again to this dataset. A grant
# names the dataset or, with a null dataset, the whole module.
covers(g, dataset) if {
	is_object(g)
	g.module == dataset.module
	object.get(g, "dataset", null) == null
}

covers(g, dataset) if {
	is_object(g)
	g.module == dataset.module
	g.dataset == dataset.name
}

# --- grants ---------------------------------------------------------------------------

grant_purpose(g) := p if {
	p := object.get(g, "purpose", null)
	is_string(p)
	p != ""
} else := null

# Partners and alumni need a grant issued for the purpose they state; anyone else
# needs the stated purpose only when the grant names one.
purpose_ok(req, g) if {
	not req.purpose_bound
	grant_purpose(g) == null
}

purpose_ok(req, g) if {
	grant_purpose(g) != null
	grant_purpose(g) == req.purpose
}

window_ok(_, g) if object.get(g, "window", null) == null

window_ok(req, g) if {
	is_object(g.window)
	is_number(req.now_ns)
	window.is_open(g.window, req.now_ns, req.utc_offsets)
}

approval_cap(g) := ranks.raw if {
	object.get(g, "approvals", 0) >= raw_min_approvals
} else := ranks.pseudonymized

# What a grant yields right now, or -1 when it cannot be used. A grant never shows more
# than it names, than the principal's kind may see, or raw without two approvals; a
# raw grant held by a partner is served at the partner's ceiling rather than refused.
grant_rank(req, g) := rank if {
	purpose_ok(req, g)
	window_ok(req, g)
	rank := min([ranks[g.profile], ranks[req.ceiling], approval_cap(g)])
} else := -1

# The usable grant yielding the most. Among equals the first in input order wins; the
# gateway sends grants ordered by id, so the choice is stable.
best_grant(req) := {"grant": req.grants[first], "rank": top} if {
	yields := [grant_rank(req, g) | some g in req.grants]
	count(yields) > 0
	top := max(yields)
	top >= 0
	first := min([i | some i; yields[i] == top])
} else := {"grant": null, "rank": -1}

# A caller may ask for less than its grants allow, never for more.
effective_rank(req, best) := best.rank if {
	req.requested == null
} else := ranks[req.requested] if {
	ranks[req.requested] <= best.rank
} else := -1

raw_refused(req) if {
	req.requested == "raw"
	req.purpose_bound
}

org_inactive(req) if {
	req.org != null
	req.org_status != "active"
}

org_inactive(req) if {
	req.org_status != null
	req.org_status != "active"
}

# The request names a profile within the kind's ceiling but above every usable grant.
above_grants(req, best) if {
	ranks[req.requested] <= ranks[req.ceiling]
	ranks[req.requested] > best.rank
}

# --- denials: sentences a caller can act on -------------------------------------------

# Every check answers a (usually empty) set, so one failing check never hides another.
denials_for(req, best) := union({
	deny_status(req, best),
	deny_org(req, best),
	deny_governing(req, best),
	deny_kind(req, best),
	deny_action(req, best),
	deny_no_grant(req, best),
	deny_unknown_profile(req, best),
	deny_raw_for_outsiders(req, best),
	deny_ceiling(req, best),
	deny_above_grants(req, best),
	deny_approvals(req, best),
	deny_unusable(req, best),
	deny_separation(req, best),
})

deny_status(req, _) := {msg |
	req.status != "active"
	msg := say([
		"principal ", quoted(req.name), " ",
		object.get(status_phrase, req.status, say(["is not active (status ", req.status, ")"])),
		" and receives no data",
	])
}

# A member of a suspended org gets nothing, whatever its own grants say.
deny_org(req, _) := {msg |
	org_inactive(req)
	msg := say([
		"organization ", quoted(req.org), " ",
		object.get(status_phrase, req.org_status, say(["is not active (status ", req.org_status, ")"])),
		"; its members receive no data",
	])
}

deny_governing(req, _) := {msg |
	req.kind in governing_kinds
	msg := concat("", [kind_plural[req.kind], " govern access and do not read data (separation of duties)"])
}

deny_kind(req, _) := {msg |
	not req.kind in governing_kinds
	req.ceiling == null
	msg := concat("", ["principal kind ", quoted(req.kind), " may not read data"])
}

deny_action(req, _) := {msg |
	req.action != "read"
	msg := concat("", ["action ", quoted(req.action), " is not granted here; grants cover 'read' only"])
}

deny_no_grant(req, _) := {msg |
	count(req.grants) == 0
	msg := concat("", [
		"no active grant covers dataset ", quoted(object.get(req.dataset, "name", "?")),
		" in module ", quoted(object.get(req.dataset, "module", "?")),
	])
}

deny_unknown_profile(req, _) := {msg |
	req.requested != null
	not ranks[req.requested]
	msg := concat("", ["unknown profile ", quoted(req.requested), "; expected one of ", concat(", ", profiles)])
}

deny_raw_for_outsiders(req, _) := {msg |
	raw_refused(req)
	msg := concat("", [kind_plural[req.kind], " never receive the raw profile"])
}

deny_ceiling(req, _) := {msg |
	ranks[req.requested] > ranks[req.ceiling]
	not raw_refused(req)
	msg := concat("", [
		kind_plural[req.kind], " receive at most the ", quoted(req.ceiling),
		" profile; the request asked for ", quoted(req.requested),
	])
}

deny_above_grants(req, best) := {msg |
	above_grants(req, best)
	best.rank >= 0
	msg := concat("", [
		"the request asked for the ", quoted(req.requested),
		" profile; the usable grants allow at most ", quoted(profiles[best.rank]),
	])
}

deny_approvals(req, best) := {msg |
	req.requested == "raw"
	above_grants(req, best)
	some g in req.grants
	g.profile == "raw"
	grant_rank(req, g) >= 0
	object.get(g, "approvals", 0) < raw_min_approvals
	msg := say([
		"the raw profile needs a grant approved by at least ", raw_min_approvals,
		" custodians; grant ", object.get(g, "id", "?"), " has ", object.get(g, "approvals", 0),
	])
}

# Why each grant could not be used, whenever the grants fell short of the request.
deny_unusable(req, best) := {msg |
	grants_fall_short(req, best)
	some msg in issues(req)
}

grants_fall_short(req, best) if {
	count(req.grants) > 0
	best.rank < 0
}

grants_fall_short(req, best) if above_grants(req, best)

deny_separation(req, _) := separation.violations(req.held, req.separation)

issues(req) := {msg | some g in req.grants; some msg in issue(req, g)}

issue(req, g) := {msg |
	not ranks[object.get(g, "profile", null)]
	msg := say(["grant ", gid(g), " names an unknown profile ", quoted(object.get(g, "profile", null))])
} | {msg |
	req.purpose_bound
	grant_purpose(g) == null
	msg := say([
		"grant ", gid(g), " has no purpose; ", kind_plural[req.kind],
		" may only use a grant issued for a stated purpose",
	])
} | {msg |
	wanted := grant_purpose(g)
	wanted != null
	req.purpose == null
	msg := concat("", ["a grant for purpose ", quoted(wanted), " is required; the request stated no purpose"])
} | {msg |
	wanted := grant_purpose(g)
	wanted != null
	req.purpose != null
	req.purpose != wanted
	msg := say([
		"grant ", gid(g), " is for purpose ", quoted(wanted),
		"; the request stated ", quoted(req.purpose),
	])
} | {msg |
	is_object(object.get(g, "window", null))
	req.now_ns == null
	msg := say(["grant ", gid(g), " is limited to ", window.describe(g.window), " and the request carries no time"])
} | {msg |
	is_object(object.get(g, "window", null))
	not window.known_zone(g.window, req.utc_offsets)
	msg := say(["grant ", gid(g), " names a timezone with no known UTC offset: ", quoted(window.zone(g.window))])
} | {msg |
	is_object(object.get(g, "window", null))
	is_number(req.now_ns)
	not window.is_open(g.window, req.now_ns, req.utc_offsets)
	msg := say([
		"grant ", gid(g), " may be used only ", window.describe(g.window),
		"; it is now ", window.local_time(g.window, req.now_ns, req.utc_offsets), " there",
	])
}

gid(g) := object.get(g, "id", null)

# --- what the caller is told ----------------------------------------------------------

explain(req, best, rank, denials, allowed) := reasons if {
	allowed
	reasons := array.concat(
		[say(["allowed under grant ", gid(best.grant), " with the ", quoted(profiles[rank]), " profile"])],
		sort([n | some n in notes(req, best)]),
	)
} else := reasons if {
	count(denials) > 0
	reasons := sort([d | some d in denials])
} else := ["no grant and no rule allows this request"]

# What capped the grant that served an allowed request.
notes(req, best) := {msg |
	best.grant.profile == "raw"
	req.purpose_bound
	msg := say([
		kind_plural[req.kind], " never receive the raw profile; grant ", gid(best.grant),
		" is served as ", quoted(req.ceiling),
	])
} | {msg |
	not req.purpose_bound
	ranks[best.grant.profile] > ranks[req.ceiling]
	msg := say([
		kind_plural[req.kind], " receive at most the ", quoted(req.ceiling),
		" profile; grant ", gid(best.grant), " is served as ", quoted(req.ceiling),
	])
} | {msg |
	best.grant.profile == "raw"
	req.ceiling == "raw"
	object.get(best.grant, "approvals", 0) < raw_min_approvals
	msg := say([
		"grant ", gid(best.grant), " has ", object.get(best.grant, "approvals", 0),
		" approval(s) and raw needs ", raw_min_approvals, ", so it is served as 'pseudonymized'",
	])
}

obligations(req, best, rank, allowed) := {
	"profile": profile,
	"grant_id": grant_id,
	"row_filters": row_filters,
	"row_cap": row_cap,
	"purpose_required": purpose_required(req),
	"purposes": purposes(req),
} if {
	[profile, grant_id, row_filters, row_cap] := granted(best, rank, allowed)
}

granted(best, rank, allowed) := facts if {
	allowed
	facts := [
		profiles[rank],
		gid(best.grant),
		array_or_empty(object.get(best.grant, "row_filter", [])),
		object.get(best.grant, "row_cap", null),
	]
} else := [null, null, [], null]

purposes(req) := sort([p | some p in {p | some g in req.grants; p := grant_purpose(g); p != null}])

# Whether a request that states no purpose could be served at all.
purpose_required(req) := true if {
	req.purpose_bound
} else := true if {
	count(req.grants) > 0
	every g in req.grants {
		grant_purpose(g) != null
	}
} else := false

# --- sentences ------------------------------------------------------------------------

text(x) := x if {
	is_string(x)
} else := s if {
	s := sprintf("%v", [x])
}

# One sentence from its parts, numbers and nulls spelled out.
say(parts) := concat("", [text(p) | some p in parts])

quoted(x) := concat("", ["'", text(x), "'"])
