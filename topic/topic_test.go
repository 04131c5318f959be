package topic_test

import (
	"errors"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/plazahq/plaza/topic"
)

func TestCheck(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		in   string
		want error
	}{
		{"plain", "chat", nil},
		{"colons", "dm:alice:bob", nil},
		{"hyphen", "mods-only", nil},
		{"periods", "app.events.v2", nil},
		{"no reserved prefix", "__system", nil},
		{"one char", "a", nil},
		{"128 chars", strings.Repeat("a", 128), nil},
		{"all classes", "aZ09_-:.", nil},
		{"space", "chat room", topic.ErrBadChar},
		{"empty", "", topic.ErrEmpty},
		{"129 chars", strings.Repeat("a", 129), topic.ErrTooLong},
		{"200 chars", strings.Repeat("a", 200), topic.ErrTooLong},
		{"slash", "a/b", topic.ErrBadChar},
		{"star", "user:*", topic.ErrBadChar},
		{"unicode", "café", topic.ErrBadChar},
		{"nul", "a\x00", topic.ErrBadChar},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := topic.Check(tt.in)
			if !errors.Is(err, tt.want) || (tt.want == nil) != (err == nil) {
				t.Errorf("Check(%q) = %v, want %v", tt.in, err, tt.want)
			}
			if got := topic.Valid(tt.in); got != (tt.want == nil) {
				t.Errorf("Valid(%q) = %v, want %v", tt.in, got, tt.want == nil)
			}
		})
	}
}

func TestCaseSensitive(t *testing.T) {
	t.Parallel()
	p := topic.MustParsePattern("chat")
	if p.Match("Chat") {
		t.Errorf("pattern %q matched %q; names are case-sensitive", "chat", "Chat")
	}
}

func TestPatternMatch(t *testing.T) {
	t.Parallel()
	tests := []struct {
		pattern string
		name    string
		want    bool
	}{
		// The example of the README and of the seed's HTTP API.
		{"user:*", "user:123:events", true},
		{"user:*", "user:123", true},
		{"user:*", "user:", true}, // "*" may match nothing, as in Redis; "user:" is a valid name
		{"user:*", "user", false},
		{"user:*", "users:123", false},
		{"user:*", "xuser:1", false},
		{"user:*:events", "user:123:events", true},
		{"user:*:events", "user:1:2:events", true},
		{"user:*:events", "user::events", true},
		{"user:*:events", "user:123:other", false},
		{"user:*:events", "user:123:events:x", false},
		{"*:events", "order:9:events", true},
		{"*:events", "events", false},
		{"*", "chat", true},
		{"*", "dm:alice", true},
		{"*", "app.events.v2", true},
		{"**", "a", true},
		{"a*b*c", "abc", true},
		{"a*b*c", "aXbYc", true},
		{"a*b*c", "acb", false},
		{"*.v2", "app.events.v2", true},
		{"*.v2", "app.events.v3", false},
		{"user:?", "user:7", true},
		{"user:?", "user:42", false},
		{"user:?", "user:", false},
		{"user:??", "user:42", true},
		{"?", "a", true},
		{"?", ":", true},
		{"?*", "a", true},
		{"?*", "", false},
		{"*?", "ab", true},
		{"u?er:*", "user:1", true},
		{"chat", "chat", true},
		{"chat", "chat:1", false},
		{"chat", "Chat", false},
		{"user:*", "user:bad name", false}, // invalid names match nothing
		{"*", "", false},
		{"*", "a b", false},
		{"*", "café", false},
		{"*", strings.Repeat("a", 129), false},
		{"*", strings.Repeat("a", 128), true},
		{"*a*a*a*a*b", strings.Repeat("a", 100), false},
		{"*a*a*a*a*b", strings.Repeat("a", 100) + "b", true},
	}
	for _, tt := range tests {
		p, err := topic.ParsePattern(tt.pattern)
		if err != nil {
			t.Fatalf("ParsePattern(%q) = %v", tt.pattern, err)
		}
		if got := p.Match(tt.name); got != tt.want {
			t.Errorf("ParsePattern(%q).Match(%q) = %v, want %v", tt.pattern, tt.name, got, tt.want)
		}
	}
}

func TestParsePatternErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   string
		want error
		hint string // in the message
	}{
		{"", topic.ErrEmpty, ""},
		{strings.Repeat("a", 129), topic.ErrTooLong, ""},
		{strings.Repeat("*", 129), topic.ErrTooLong, ""},
		{"user:a b", topic.ErrBadChar, `' ' at offset 6`},
		{"user/*", topic.ErrBadChar, `'/'`},
		{"café:*", topic.ErrBadChar, `offset 3`},
		{"user:>", topic.ErrWildcard, `write "user:*"`},
		{">", topic.ErrWildcard, `write "*"`},
		{"user:>:x", topic.ErrWildcard, `write "user:*:x"`},
		{"us>er x", topic.ErrWildcard, `use "*", which matches any run of characters`},
		{"user:[ab]", topic.ErrWildcard, `character classes are not supported`},
		{"user:a]", topic.ErrWildcard, `character classes are not supported`},
		{`user:\*`, topic.ErrWildcard, `escapes are not supported`},
	}
	for _, tt := range tests {
		_, err := topic.ParsePattern(tt.in)
		if !errors.Is(err, tt.want) {
			t.Errorf("ParsePattern(%q) = %v, want %v", tt.in, err, tt.want)
			continue
		}
		if !strings.Contains(err.Error(), tt.hint) {
			t.Errorf("ParsePattern(%q) = %q, want a message with %q", tt.in, err, tt.hint)
		}
	}
}

func TestIsPattern(t *testing.T) {
	t.Parallel()
	for s, want := range map[string]bool{"user:*": true, "user:?": true, "chat": false, "user:>": false, "[a]": false} {
		if got := topic.IsPattern(s); got != want {
			t.Errorf("IsPattern(%q) = %v, want %v", s, got, want)
		}
		if p, err := topic.ParsePattern(s); err == nil && p.Wild() != want {
			t.Errorf("ParsePattern(%q).Wild() = %v, want %v", s, p.Wild(), want)
		}
	}
}

// TestMatchWorstCase matches patterns that make backtracking matchers take
// exponential time against names of the longest length. The greedy matcher
// takes microseconds; the bound is only there to fail instead of hanging.
func TestMatchWorstCase(t *testing.T) {
	t.Parallel()
	name := strings.Repeat("a", topic.MaxLen)
	for _, pattern := range []string{
		strings.Repeat("*a", 63) + "*b",
		strings.Repeat("a*", 63) + "b",
		strings.Repeat("*?", 64),
		"*" + strings.Repeat("a", 126) + "b",
	} {
		p := topic.MustParsePattern(pattern)
		done := make(chan bool, 1)
		go func() { done <- p.Match(name) }()
		select {
		case got := <-done:
			if want := !strings.HasSuffix(pattern, "b"); got != want {
				t.Errorf("ParsePattern(%q).Match(%d a's) = %v, want %v", pattern, len(name), got, want)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("ParsePattern(%q).Match(%d a's) did not return within 10s", pattern, len(name))
		}
	}
}

func TestZeroPatternMatchesNothing(t *testing.T) {
	t.Parallel()
	var p topic.Pattern
	for _, name := range []string{"chat", ""} {
		if p.Match(name) {
			t.Errorf("zero Pattern matched %q", name)
		}
	}
	if p.Wild() {
		t.Error("zero Pattern is Wild")
	}
}

// globRegexp is the reference matcher of FuzzPatternMatch: the pattern as a
// regular expression, "*" as ".*" and "?" as ".", everything else literal.
func globRegexp(pattern string) *regexp.Regexp {
	var b strings.Builder
	b.WriteString(`^(?s:`)
	for _, c := range []byte(pattern) {
		switch c {
		case '*':
			b.WriteString(`.*`)
		case '?':
			b.WriteString(`.`)
		default:
			b.WriteString(regexp.QuoteMeta(string(c)))
		}
	}
	b.WriteString(`)$`)
	return regexp.MustCompile(b.String())
}

// FuzzPatternMatch checks Match against a regular expression built from the
// pattern, and what ParsePattern promises about every input.
func FuzzPatternMatch(f *testing.F) {
	for _, s := range [][2]string{
		{"user:*", "user:123:events"},
		{"user:*", "user:"},
		{"user:?", "user:42"},
		{"*a*a*b", "aaaaab"},
		{"a*b*c", "acb"},
		{"*:events", "order:9:events"},
		{"**", ""},
		{"chat", "chat"},
		{"user:>", "user:1"},
		{"[ab]", "a"},
		{`\*`, "*"},
		{"", "x"},
		{"*", "a b"},
	} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, pattern, name string) {
		p, err := topic.ParsePattern(pattern)
		if err != nil {
			if p.String() != "" || p.Wild() {
				t.Fatalf("ParsePattern(%q) = %v with a non-zero Pattern", pattern, err)
			}
			if p.Match(name) {
				t.Fatalf("the zero Pattern matched %q", name)
			}
			return
		}
		if p.String() != pattern {
			t.Fatalf("String() = %q, want %q", p.String(), pattern)
		}
		if p.Wild() != topic.IsPattern(pattern) {
			t.Fatalf("ParsePattern(%q).Wild() = %v, IsPattern = %v", pattern, p.Wild(), topic.IsPattern(pattern))
		}
		re := globRegexp(pattern)
		// Random names are seldom valid; try the name with its bytes
		// outside names replaced as well, so that most runs compare
		// matches of valid names.
		for _, name := range []string{name, nameOf(name)} {
			got := p.Match(name)
			want := topic.Valid(name) && re.MatchString(name)
			if got != want {
				t.Fatalf("ParsePattern(%q).Match(%q) = %v, want %v", pattern, name, got, want)
			}
			if !p.Wild() && got != (name == pattern) {
				t.Fatalf("literal pattern %q: Match(%q) = %v", pattern, name, got)
			}
		}
	})
}

// nameOf returns s with every byte that names may not have replaced by one
// that they may, from a small set so that patterns still match it.
func nameOf(s string) string {
	b := []byte(s)
	for i, c := range b {
		if !topic.Valid(string(c)) {
			b[i] = "a:."[int(c)%3]
		}
	}
	return string(b)
}

// BenchmarkMatch measures one Match of a topic name against a pattern, as
// the hub's fan-out does for every pattern subscription of a room.
//
//	go test -run '^$' -bench Match ./topic
func BenchmarkMatch(b *testing.B) {
	tests := []struct {
		name, pattern, topic string
	}{
		{"literal", "chat", "chat"},
		{"star/match", "user:*:events", "user:123:events"},
		{"star/miss", "order:*", "user:123:events"},
		{"star/worst", strings.Repeat("*a", 63) + "*b", strings.Repeat("a", 128)},
	}
	for _, tt := range tests {
		b.Run(tt.name, func(b *testing.B) {
			p := topic.MustParsePattern(tt.pattern)
			want := p.Match(tt.topic)
			b.ReportAllocs()
			for b.Loop() {
				if p.Match(tt.topic) != want {
					b.Fatal("Match changed its answer")
				}
			}
		})
	}
}
