// Package ratewindowtest holds the cases every implementation of the
// per-minute rate window of package ratewindow must pass, so that the in-process
// Limiter and the shared windows of other transports are held to the same
// semantics by one table.
package ratewindowtest

import "time"

// Step is one event: at At after the case's start, Allow must report OK
// and, when it refuses, Retry.
type Step struct {
	At    time.Duration
	OK    bool
	Retry time.Duration // when refused
}

// Case is a named sequence of events on one key with one limit.
type Case struct {
	Name  string
	Limit int
	Steps []Step
}

// Cases returns the shared cases, a fresh slice on each call.
func Cases() []Case {
	return []Case{
		{"limit one", 1, []Step{
			{0, true, 0}, {time.Second, false, 59 * time.Second}, {59*time.Second + 999*time.Millisecond, false, time.Millisecond},
			{60 * time.Second, true, 0},
		}},
		{"spread out", 3, []Step{
			{0, true, 0}, {10 * time.Second, true, 0}, {20 * time.Second, true, 0},
			{30 * time.Second, false, 30 * time.Second}, {60 * time.Second, true, 0},
			{65 * time.Second, false, 5 * time.Second}, {70 * time.Second, true, 0},
		}},
		{"no double burst at a minute boundary", 2, []Step{
			{59 * time.Second, true, 0}, {59 * time.Second, true, 0},
			{61 * time.Second, false, 58 * time.Second}, {119 * time.Second, true, 0},
		}},
		{"a long pause empties the window", 2, []Step{
			{0, true, 0}, {0, true, 0}, {time.Hour, true, 0}, {time.Hour, true, 0}, {time.Hour, false, time.Minute},
		}},
		{"zero limit allows nothing", 0, []Step{
			{0, false, time.Minute},
		}},
	}
}
