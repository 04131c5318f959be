// Package topic defines what a topic name is and how a topic pattern matches
// topic names.
//
// Use [Valid] or [Check] to test a name before it goes anywhere; use [ParsePattern]
// to turn a subscription pattern such as "user:*" into a [Pattern] and
// [Pattern.Match] to test names against it.
//
// # Names
//
// A topic name is 1 to 128 characters from [a-zA-Z0-9_-:.]. Names are
// case-sensitive ("chat" and "Chat" are two topics) and no name or prefix is
// reserved: "__system" is as good a name as "chat". Colons and periods are
// ordinary characters in a name; by convention a colon separates namespaces
// ("dm:alice:bob").
//
// # Patterns
//
// A pattern is a topic name in which whole colon-separated segments may be
// wildcards:
//
//   - "*" matches exactly one segment: "user:*" matches "user:123" but neither
//     "user" nor "user:123:events".
//   - ">" as the last segment matches one or more segments: "user:>" matches
//     "user:123" and "user:123:events", but not "user".
//
// A wildcard must be a whole segment ("user*" is not a pattern) and ">" may only
// come last. A pattern without wildcards matches exactly one name, itself.
// Patterns are for subscribing; nobody can publish to one.
//
// The package has no state; everything in it is safe for concurrent use.
package topic

import (
	"errors"
	"fmt"
	"strings"
)

// MaxLen is the longest topic name or pattern, in bytes.
const MaxLen = 128

// Errors returned by [Check] and [ParsePattern]. Callers outside this package
// normally see them wrapped in a pubsub error with code INVALID_TOPIC_NAME.
var (
	ErrEmpty    = errors.New("topic: name is empty")
	ErrTooLong  = fmt.Errorf("topic: name is longer than %d characters", MaxLen)
	ErrBadChar  = errors.New("topic: name has a character outside [a-zA-Z0-9_-:.]")
	ErrWildcard = errors.New("topic: misplaced wildcard")
)

// Valid reports whether name is a valid topic name.
func Valid(name string) bool {
	return Check(name) == nil
}

// Check returns nil if name is a valid topic name, or an error that says why not.
func Check(name string) error {
	if name == "" {
		return ErrEmpty
	}
	if len(name) > MaxLen {
		return ErrTooLong
	}
	for i := 0; i < len(name); i++ {
		if !nameChar(name[i]) {
			return fmt.Errorf("%w: %q at offset %d", ErrBadChar, name[i], i)
		}
	}
	return nil
}

func nameChar(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	case c == '_', c == '-', c == ':', c == '.':
		return true
	}
	return false
}

// IsPattern reports whether s contains a wildcard character ('*' or '>'). It
// says nothing about whether s is a valid pattern.
func IsPattern(s string) bool {
	return strings.ContainsAny(s, "*>")
}

// Pattern is a parsed topic pattern. The zero value matches nothing.
// A Pattern is immutable and safe for concurrent use.
type Pattern struct {
	raw  string
	segs []string // "*" and ">" are wildcards; anything else is literal
}

// ParsePattern parses s as a topic pattern (see the package doc). A plain topic
// name is a valid pattern that matches only itself.
func ParsePattern(s string) (Pattern, error) {
	if s == "" {
		return Pattern{}, ErrEmpty
	}
	if len(s) > MaxLen {
		return Pattern{}, ErrTooLong
	}
	segs := strings.Split(s, ":")
	for i, seg := range segs {
		switch seg {
		case "*":
			continue
		case ">":
			if i != len(segs)-1 {
				return Pattern{}, fmt.Errorf("%w: \">\" must be the last segment of %q", ErrWildcard, s)
			}
			continue
		}
		if strings.ContainsAny(seg, "*>") {
			return Pattern{}, fmt.Errorf("%w: a wildcard must be a whole segment in %q", ErrWildcard, s)
		}
		for j := 0; j < len(seg); j++ {
			if !nameChar(seg[j]) {
				return Pattern{}, fmt.Errorf("%w: %q in %q", ErrBadChar, seg[j], s)
			}
		}
	}
	return Pattern{raw: s, segs: segs}, nil
}

// MustParsePattern is like [ParsePattern] but panics on error. It is meant for
// patterns written in the source code.
func MustParsePattern(s string) Pattern {
	p, err := ParsePattern(s)
	if err != nil {
		panic(err)
	}
	return p
}

// String returns the pattern as it was written.
func (p Pattern) String() string { return p.raw }

// Wild reports whether p has at least one wildcard segment.
func (p Pattern) Wild() bool { return IsPattern(p.raw) }

// Match reports whether the topic name matches p. An invalid name matches
// nothing.
func (p Pattern) Match(name string) bool {
	if len(p.segs) == 0 || Check(name) != nil {
		return false
	}
	rest := name
	for i, seg := range p.segs {
		if seg == ">" {
			return rest != ""
		}
		cur, after, more := strings.Cut(rest, ":")
		if seg == "*" {
			if cur == "" {
				return false
			}
		} else if seg != cur {
			return false
		}
		if i == len(p.segs)-1 {
			return !more
		}
		if !more {
			return false
		}
		rest = after
	}
	return false
}
