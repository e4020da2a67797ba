# Unit tests for window.rego. Instants are UTC nanoseconds; Asia/Shanghai is UTC+8
# all year (in the fixed table), America/New_York moves between UTC-5 and UTC-4 (the
# caller supplies the offset for the instant).
package kiteline.window_test

import rego.v1

import data.kiteline.window

office_hours := {
	"days": ["mon", "tue", "wed", "thu", "fri"],
	"start": "08:00",
	"end": "20:00",
	"timezone": "Asia/Shanghai",
}

# Tuesday 2026-11-24 in Shanghai.
shanghai_0759 := 1795478340000000000 # 2026-11-23T23:59:00Z

shanghai_0800 := 1795478400000000000 # 2026-11-24T00:00:00Z

shanghai_1959 := 1795521540000000000 # 2026-11-24T11:59:00Z

shanghai_2000 := 1795521600000000000 # 2026-11-24T12:00:00Z

# Saturday 2026-11-28 10:00 in Shanghai.
shanghai_saturday := 1795831200000000000 # 2026-11-28T02:00:00Z

test_one_minute_before_opening_is_closed if {
	not window.is_open(office_hours, shanghai_0759, {})
}

test_opening_minute_is_open if {
	window.is_open(office_hours, shanghai_0800, {})
}

test_last_minute_is_open if {
	window.is_open(office_hours, shanghai_1959, {})
}

test_closing_minute_is_closed if {
	not window.is_open(office_hours, shanghai_2000, {})
}

test_weekend_is_closed if {
	not window.is_open(office_hours, shanghai_saturday, {})
}

# The same instant is Monday evening in UTC and Tuesday morning in Shanghai.
test_day_and_minute_are_local if {
	window.local_clock({"timezone": "UTC"}, shanghai_0759, {}) == ["mon", (23 * 60) + 59]
	window.local_clock(office_hours, shanghai_0759, {}) == ["tue", (7 * 60) + 59]
}

test_missing_fields_mean_always_open_in_utc if {
	window.is_open({}, shanghai_saturday, {})
}

test_overnight_window_spans_midnight if {
	night := {"start": "22:00", "end": "06:00", "timezone": "Asia/Shanghai"}
	window.is_open(night, shanghai_0759 - ((2 * 3600) * 1000000000), {}) # 05:59
	not window.is_open(night, shanghai_0800 - ((2 * 3600) * 1000000000), {}) # 06:00
	window.is_open(night, shanghai_2000 + ((2 * 3600) * 1000000000), {}) # 22:00
	not window.is_open(night, shanghai_2000, {}) # 20:00
}

test_empty_window_admits_nothing if {
	not window.is_open({"start": "08:00", "end": "08:00"}, shanghai_0800, {})
}

test_whole_day_runs_to_midnight if {
	window.is_open({"start": "00:00", "end": "24:00", "timezone": "Asia/Shanghai"}, shanghai_0759, {})
}

test_malformed_times_admit_nothing if {
	not window.is_open({"start": "8:00", "end": "20:00", "timezone": "Asia/Shanghai"}, shanghai_1959, {})
}

# Daylight saving: 09:30 in New York is 14:30 UTC in winter and 13:30 UTC in summer;
# the caller passes the offset in force at the instant.
test_daylight_saving_follows_the_offset_given if {
	new_york := {"start": "09:00", "end": "17:00", "timezone": "America/New_York"}
	winter := {"America/New_York": -18000}
	summer := {"America/New_York": -14400}
	window.is_open(new_york, 1768573800000000000, winter) # 2026-01-16T14:30:00Z, Fri 09:30 EST
	window.is_open(new_york, 1781616600000000000, summer) # 2026-06-16T13:30:00Z, Tue 09:30 EDT
	not window.is_open(new_york, 1781613000000000000, summer) # 2026-06-16T12:30:00Z, 08:30 EDT
}

test_a_zone_without_an_offset_stays_closed if {
	new_york := {"start": "00:00", "end": "24:00", "timezone": "America/New_York"}
	not window.known_zone(new_york, {})
	not window.is_open(new_york, 1768573800000000000, {})
	window.known_zone(new_york, {"America/New_York": -18000})
}

test_given_offsets_override_the_fixed_table if {
	window.offset("Asia/Shanghai", {}) == 28800
	window.offset("Asia/Shanghai", {"Asia/Shanghai": 0}) == 0
}

test_minutes_reads_zero_padded_times if {
	window.minutes("08:30") == 510
	window.minutes("24:00") == 1440
	not window.minutes("8:30")
	not window.minutes("08.30")
}

test_within_handles_same_day_and_overnight if {
	window.within(480, 1200, 480)
	not window.within(480, 1200, 1200)
	window.within(1320, 360, 1410)
	window.within(1320, 360, 10)
	not window.within(1320, 360, 720)
	not window.within(480, 480, 480)
}

test_describe_and_local_time_explain_the_window if {
	window.describe(office_hours) == "mon,tue,wed,thu,fri 08:00-20:00 (Asia/Shanghai)"
	window.local_time(office_hours, shanghai_0759, {}) == "tue 07:59"
}

# A whole-day window is open in the first hour after midnight too ("00" once parsed to
# a number that did not compare as zero).
whole_day := {"start": "00:00", "end": "24:00", "timezone": "UTC"}

test_a_whole_day_window_is_open_just_after_midnight if {
	window.is_open(whole_day, shanghai_0800, {}) # 2026-11-24T00:00:00Z
	window.is_open(whole_day, shanghai_0800 + 2280000000000, {}) # 00:38 UTC
}

test_midnight_reads_as_zero_minutes if {
	window.minutes("00:00") == 0
	window.minutes("00:38") == 38
	window.minutes("09:05") == 545
}
