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
// A pattern is a glob, matched as Redis PSUBSCRIBE matches channel names: a
// topic name that may also hold the wildcards
//
//   - "*", any run of characters, colons and periods included, or none:
//     "user:*" matches "user:123", "user:123:events" and "user:", but
//     neither "user" nor "users:123";
//   - "?", exactly one character: "user:?" matches "user:7", not "user:42".
//
// Wildcards may stand anywhere, as often as needed: "*:events" matches
// every topic that ends in ":events", "user:*:events" those that also start
// with "user:", and "*" every topic. A pattern without wildcards matches one name, itself.
// Patterns are for subscribing; nobody can publish to one.
//
// "*" and "?" are the only wildcards. Redis's character classes ("[ab]")
// and escapes ("\*") are not supported, and escapes are never needed, since
// neither wildcard is a character of names; ">", a wildcard elsewhere (NATS),
// is not one here: "user:*" already matches every topic under "user:".
// [ParsePattern] refuses all of these with [ErrWildcard] and a message that
// says what to write instead, and any other character outside names with
// [ErrBadChar].
//
// Matching is the greedy glob algorithm, which only ever goes back to the
// latest "*": its time grows at worst with the pattern's length times the
// name's (both at most 128 bytes), so a pattern such as "*a*a*a*a*b" cannot
// make it explode, and it allocates nothing.
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
	ErrWildcard = errors.New("topic: unsupported wildcard")
)

// Valid reports whether name is a valid topic name.
func Valid(name string) bool {
	if name == "" || len(name) > MaxLen {
		return false
	}
	for i := 0; i < len(name); i++ {
		if !nameChars[name[i]] {
			return false
		}
	}
	return true
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
		if !nameChars[name[i]] {
			return fmt.Errorf("%w: %q at offset %d", ErrBadChar, name[i], i)
		}
	}
	return nil
}

// nameChars holds the bytes allowed in names.
var nameChars = func() (t [256]bool) {
	for c := range t {
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
			t[c] = true
		case c == '_', c == '-', c == ':', c == '.':
			t[c] = true
		}
	}
	return t
}()

// IsPattern reports whether s contains a wildcard character ('*' or '?'). It
// says nothing about whether s is a valid pattern.
func IsPattern(s string) bool {
	return strings.ContainsAny(s, "*?")
}

// Pattern is a parsed topic pattern. The zero value matches nothing.
// A Pattern is immutable and safe for concurrent use.
type Pattern struct {
	raw  string
	wild bool // raw has a wildcard
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
	wild := false
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case nameChars[c]:
		case c == '*' || c == '?':
			wild = true
		default:
			return Pattern{}, patternError(s, i)
		}
	}
	return Pattern{raw: s, wild: wild}, nil
}

// patternError says why s[i] may not be in a pattern.
func patternError(s string, i int) error {
	c := s[i]
	switch c {
	case '>':
		hint := `use "*", which matches any run of characters, colons included`
		fixed := strings.ReplaceAll(s, ">", "*")
		if _, err := ParsePattern(fixed); err == nil { // fixed has no '>': no deeper recursion
			hint = fmt.Sprintf(`write %q instead: "*" matches any run of characters, colons included`, fixed)
		}
		return fmt.Errorf("%w: '>' at offset %d of %q: %s", ErrWildcard, i, s, hint)
	case '[', ']':
		return fmt.Errorf(`%w: %q at offset %d of %q: character classes are not supported; patterns have only "*" (any run of characters) and "?" (one character)`, ErrWildcard, c, i, s)
	case '\\':
		return fmt.Errorf(`%w: '\' at offset %d of %q: escapes are not supported, nor needed, since "*" and "?" never occur in names`, ErrWildcard, i, s)
	}
	return fmt.Errorf("%w: %q at offset %d of the pattern %q", ErrBadChar, c, i, s)
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

// Wild reports whether p has a wildcard. A Pattern without one matches
// only the name it was parsed from.
func (p Pattern) Wild() bool { return p.wild }

// Match reports whether the topic name matches p. An invalid name matches
// nothing.
func (p Pattern) Match(name string) bool {
	if !p.wild {
		return p.raw != "" && name == p.raw // p.raw is a valid name
	}
	if len(name) > MaxLen || !glob(p.raw, name) {
		return false
	}
	return Valid(name) // a wildcard may have matched characters outside names
}

// glob reports whether name matches the pattern p with the greedy
// two-pointer algorithm: on a mismatch it goes back only to the latest '*',
// which then takes one more character of name. Earlier stars need no second
// try, since whatever the later one can skip they could too; so the loop
// runs at most len(p)·len(name) times, and usually about len(name). A
// literal right after a '*' is looked for with IndexByte instead of one
// character at a time.
func glob(p, name string) bool {
	pi, ni := 0, 0
	star, next := -1, 0 // just after the latest '*' of p, and where in name that part starts
	for ni < len(name) {
		if pi < len(p) {
			switch c := p[pi]; c {
			case '*':
				pi++
				if pi == len(p) {
					return true // a final '*' takes all that is left
				}
				star, next = pi, ni
				continue
			case '?':
				pi++
				ni++
				continue
			default:
				if c == name[ni] {
					pi++
					ni++
					continue
				}
				if pi == star {
					k := strings.IndexByte(name[ni+1:], c)
					if k < 0 {
						return false // no later start can match c either
					}
					next = ni + 1 + k
					pi, ni = pi+1, next+1
					continue
				}
			}
		}
		if star < 0 {
			return false
		}
		next++
		pi, ni = star, next
	}
	for pi < len(p) && p[pi] == '*' {
		pi++
	}
	return pi == len(p)
}
