package main

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

// FuzzPayloads: whatever stdin holds, pub sends only valid JSON, one
// message per non-blank line, and stops at the first line that is not JSON
// with a usage error that says which line.
func FuzzPayloads(f *testing.F) {
	for _, seed := range []string{"1\n\"two\"\n", "{\"a\": 1}\n\n[1,2]", "{bad\n", "\"unterminated\n", " \t\n", "null\r\ntrue\r\n"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, stdin string) {
		next, err := payloads(nil, strings.NewReader(stdin))
		if err != nil {
			t.Fatalf("payloads(stdin) = %v", err)
		}
		for {
			p, ok, err := next()
			var uerr usageError
			if err != nil {
				if !errors.As(err, &uerr) && !strings.Contains(err.Error(), "token too long") {
					t.Fatalf("a bad line gave %v, want a usage error", err)
				}
				return
			}
			if !ok {
				return
			}
			if !json.Valid(p) {
				t.Fatalf("payload %q is not JSON", p)
			}
		}
	})
}
