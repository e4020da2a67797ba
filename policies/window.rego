# Time windows on grants: "weekdays 08:00-20:00 Asia/Shanghai".
#
# A window is read in the grant's own timezone, so a grant issued to a team in Shanghai
# keeps meaning Shanghai office hours wherever the gateway runs.
#
# The local clock is computed here from the UTC instant and the zone's UTC offset, not
# with time.clock/time.weekday: in rego-cpp 1.5.2 those go through libstdc++'s tz
# database and abort the process ("free(): invalid pointer") whenever another
# extension loaded libstdc++ first, as numpy and pyarrow do. The offset for the instant
# of the request comes from request.utc_offsets, which both kiteline engines fill in
# from the IANA database, daylight saving included; zones that never change their
# offset are also known here, so a caller without tz data still gets them right. A zone
# known to neither is not guessed: its window stays closed.
#
# A window is {"days": [...], "start": "HH:MM", "end": "HH:MM", "timezone": "Area/City"};
# every field is optional (all days, 00:00, 24:00, UTC).
package kiteline.window

import rego.v1

day_names := ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]

# 1970-01-01, day zero of Unix time, was a Thursday.
epoch_week := ["thu", "fri", "sat", "sun", "mon", "tue", "wed"]

ns_per_second := 1000000000

ns_per_minute := 60000000000

ns_per_day := 86400000000000

ns_per_week := 604800000000000

# Seconds east of UTC, for zones without daylight saving.
fixed_offsets := {
	"UTC": 0,
	"Etc/UTC": 0,
	"GMT": 0,
	"Etc/GMT": 0,
	"Asia/Shanghai": 28800,
	"Asia/Hong_Kong": 28800,
	"Asia/Macau": 28800,
	"Asia/Taipei": 28800,
	"Asia/Singapore": 28800,
	"Asia/Tokyo": 32400,
	"Asia/Seoul": 32400,
	"Asia/Kolkata": 19800,
	"Asia/Dubai": 14400,
}

zone(w) := object.get(w, "timezone", "UTC")

days(w) := object.get(w, "days", day_names)

start(w) := object.get(w, "start", "00:00")

end(w) := object.get(w, "end", "24:00")

# The caller's offset for this instant first, then the fixed table. (Values are bound
# inside the bodies: rego-cpp evaluates an else value before its condition.)
offset(tz, offsets) := seconds if {
	seconds := object.get(offsets, tz, null)
	is_number(seconds)
} else := seconds if {
	seconds := fixed_offsets[tz]
}

known_zone(w, offsets) if is_number(offset(zone(w), offsets))

# [weekday, minute of the day] on the wall clock of the window's zone.
local_clock(w, ns, offsets) := [epoch_week[weekday], minute] if {
	local := ns + (offset(zone(w), offsets) * ns_per_second)
	weekday := floor(((local % ns_per_week) - (local % ns_per_day)) / ns_per_day)
	minute := floor((local % ns_per_day) / ns_per_minute)
}

# "08:30" -> 510; "24:00" -> 1440, so that a window can run to midnight. Anything but
# zero-padded "HH:MM" is not a time and admits nothing.
# The digits are read behind a leading "1": rego-cpp keeps a number parsed from "00"
# in a form that does not compare as zero, which closed a window starting at 00:00.
minutes(hhmm) := ((digits(substring(hhmm, 0, 2)) * 60) + digits(substring(hhmm, 3, 2))) if {
	count(hhmm) == 5
	substring(hhmm, 2, 1) == ":"
}

digits(two) := to_number(concat("", ["1", two])) - 100

# Start inclusive, end exclusive: 08:00-20:00 admits 08:00 and 19:59, refuses 20:00.
within(first, last, now) if {
	first < last
	first <= now
	now < last
}

# An end before the start runs overnight (22:00-06:00); the day check then applies to
# the local day at the moment of the request.
within(first, last, now) if {
	first > last
	now >= first
}

within(first, last, now) if {
	first > last
	now < last
}

# An empty window (start == end) admits nothing; a whole day is 00:00-24:00.
is_open(w, ns, offsets) if {
	clock := local_clock(w, ns, offsets)
	clock[0] in days(w)
	within(minutes(start(w)), minutes(end(w)), clock[1])
}

# Messages are built with concat: rego-cpp 1.5.2's sprintf pastes strings computed by
# other builtins with their JSON quotes, which would corrupt the decision document.

# "tue 07:59" in the window's zone, for reasons a partner can act on.
local_time(w, ns, offsets) := concat(" ", [clock[0], sprintf("%02d:%02d", [floor(clock[1] / 60), clock[1] % 60])]) if {
	clock := local_clock(w, ns, offsets)
}

describe(w) := concat("", [concat(",", days(w)), " ", start(w), "-", end(w), " (", zone(w), ")"])
