package topic_test

import (
	"errors"
	"strings"
	"testing"

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
		{"user:*", "user:123", true},
		{"user:*", "user", false},
		{"user:*", "user:", false},
		{"user:*", "user:123:events", false},
		{"user:*", "users:123", false},
		{"user:*:events", "user:123:events", true},
		{"user:*:events", "user:123:other", false},
		{"user:>", "user:123", true},
		{"user:>", "user:123:events", true},
		{"user:>", "user", false},
		{"user:>", "user:", false},
		{">", "anything.at:all", true},
		{"*", "chat", true},
		{"*", "dm:alice", false},
		{"chat", "chat", true},
		{"chat", "chat:1", false},
		{"*:*", "a:b", true},
		{"*:*", "a", false},
		{"user:*", "user:bad name", false},
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
	}{
		{"", topic.ErrEmpty},
		{"user*", topic.ErrWildcard},
		{"user:>:x", topic.ErrWildcard},
		{"us>er", topic.ErrWildcard},
		{"user:a b", topic.ErrBadChar},
		{strings.Repeat("a", 129), topic.ErrTooLong},
	}
	for _, tt := range tests {
		if _, err := topic.ParsePattern(tt.in); !errors.Is(err, tt.want) {
			t.Errorf("ParsePattern(%q) = %v, want %v", tt.in, err, tt.want)
		}
	}
}

func TestZeroPatternMatchesNothing(t *testing.T) {
	t.Parallel()
	var p topic.Pattern
	if p.Match("chat") {
		t.Error("zero Pattern matched \"chat\"")
	}
}

func FuzzParsePattern(f *testing.F) {
	for _, s := range []string{"user:*", "user:>", ">", "*", "a:b:c", "", "a*", "x:>:y", "::", "user:"} {
		f.Add(s, "user:123")
	}
	f.Fuzz(func(t *testing.T, pattern, name string) {
		p, err := topic.ParsePattern(pattern)
		if err != nil {
			return
		}
		if p.String() != pattern {
			t.Fatalf("String() = %q, want %q", p.String(), pattern)
		}
		if p.Match(name) && !topic.Valid(name) {
			t.Fatalf("pattern %q matched invalid name %q", pattern, name)
		}
		if !p.Wild() && p.Match(name) != (name == pattern) {
			t.Fatalf("literal pattern %q: Match(%q) = %v", pattern, name, p.Match(name))
		}
	})
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
