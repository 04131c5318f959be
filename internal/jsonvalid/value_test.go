package jsonvalid

import (
	"encoding/json"
	"testing"
)

// FuzzValue holds Value to encoding/json: the value it finds at the start of
// the data is valid JSON, and a valid value followed by a comma, as in an
// object or an array, is found whole.
func FuzzValue(f *testing.F) {
	for _, c := range cases {
		f.Add([]byte(c))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if n, err := Value(b, StdDepth); err == nil && !json.Valid(b[:n]) {
			t.Fatalf("Value(%q) = %d, but %q is not valid JSON", b, n, b[:n])
		}
		if len(b) == 0 || isSpace(b[0]) || isSpace(b[len(b)-1]) {
			return
		}
		n, err := Value(append(b[:len(b):len(b)], ','), StdDepth)
		if valid := json.Valid(b); valid != (err == nil && n == len(b)) {
			t.Fatalf("Value(%q + \",\") = %d, %v; encoding/json says valid is %v", b, n, err, valid)
		}
	})
}

func TestValueDepth(t *testing.T) {
	tests := []struct {
		in       string
		maxDepth int
		want     int
		wantErr  error
	}{
		{`[[1]],`, 2, 5, nil},
		{`[[1]],`, 1, 0, ErrTooDeep},
		{`{"a":"}"} tail`, 1, 9, nil},
		{`12.5e3}`, 0, 6, nil},
		{` 1`, 0, 0, ErrSyntax},
		{`[1,]`, 5, 0, ErrSyntax},
	}
	for _, tt := range tests {
		n, err := Value([]byte(tt.in), tt.maxDepth)
		if n != tt.want || err != tt.wantErr {
			t.Errorf("Value(%q, %d) = %d, %v; want %d, %v", tt.in, tt.maxDepth, n, err, tt.want, tt.wantErr)
		}
	}
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }
