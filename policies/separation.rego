# Module separation, re-checked on every decision.
#
# Grant approval already enforces these limits, but limits change and grants held
# through an org arrive from elsewhere; checking again at read time means a tightened
# rule takes effect on the very next request instead of at the next grant review.
#
# `held` is the set of modules the principal holds grants on (directly or through its
# org); `rules` is {"max_modules_per_principal": n or null, "exclusive": [[m, ...], ...]}.
package kiteline.separation

import rego.v1

over_limit(held, rules) if {
	limit := object.get(rules, "max_modules_per_principal", null)
	is_number(limit)
	count(held) > limit
}

# Groups of modules that must never be held together; a pair is the usual case.
held_together(held, rules) := {group |
	some group in exclusive_groups(rules)
	count(group) > 1
	every module in group {
		module in held
	}
}

exclusive_groups(rules) := groups if {
	groups := object.get(rules, "exclusive", [])
	is_array(groups)
} else := []

# The decision allows only when this holds; violations() says why it does not.
ok(held, rules) if {
	not over_limit(held, rules)
	count(held_together(held, rules)) == 0
}

violations(held, rules) := {msg |
	over_limit(held, rules)
	msg := concat("", [
		"the principal holds grants on ", format_int(count(held), 10), " modules (",
		concat(", ", sort([m | some m in held])),
		"); at most ", sprintf("%v", [rules.max_modules_per_principal]), " may be held at once",
	])
} | {msg |
	some group in held_together(held, rules)
	msg := concat("", [
		"modules ", concat(" and ", [concat("", ["'", m, "'"]) | some m in sort(group)]),
		" may not be held together (separation of duties)",
	])
}
