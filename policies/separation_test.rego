# Unit tests for separation.rego.
package kiteline.separation_test

import rego.v1

import data.kiteline.separation

rules := {"max_modules_per_principal": 3, "exclusive": [["imaging", "crm"]]}

test_within_the_limit_is_ok if {
	separation.ok({"imaging", "labels", "genomics"}, rules)
	count(separation.violations({"imaging", "labels", "genomics"}, rules)) == 0
}

test_over_the_limit_is_refused if {
	held := {"imaging", "labels", "genomics", "notes"}
	not separation.ok(held, rules)
	separation.violations(held, rules) == {
		"the principal holds grants on 4 modules (genomics, imaging, labels, notes); at most 3 may be held at once",
	}
}

test_no_limit_means_any_number if {
	separation.ok({"a", "b", "c", "d", "e"}, {"max_modules_per_principal": null, "exclusive": []})
}

test_an_exclusive_pair_held_together_is_refused if {
	held := {"imaging", "crm"}
	not separation.ok(held, rules)
	separation.violations(held, rules) == {"modules 'crm' and 'imaging' may not be held together (separation of duties)"}
}

test_one_half_of_an_exclusive_pair_is_fine if {
	separation.ok({"crm", "labels"}, rules)
}

test_exclusive_groups_may_be_larger_than_pairs if {
	trio := {"max_modules_per_principal": null, "exclusive": [["a", "b", "c"]]}
	separation.ok({"a", "b"}, trio)
	not separation.ok({"a", "b", "c"}, trio)
}

test_both_rules_report_together if {
	held := {"imaging", "crm", "labels", "notes"}
	count(separation.violations(held, rules)) == 2
}

test_missing_rules_allow_everything if {
	separation.ok({"imaging", "crm"}, {})
}
