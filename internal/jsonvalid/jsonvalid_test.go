package jsonvalid

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"strings"
	"testing"
)

var cases = []string{
	``, ` `, `1`, `-0`, `-`, `01`, `1.`, `1.5`, `1e`, `1e+`, `1E-7`, `-1.5e10`, `0.0e0`,
	`"`, `""`, `"a\"b"`, `"\u00e9"`, `"\u00g9"`, `"\x"`, "\"a\tb\"", "\"\xff\xfe\"", `"\/"`,
	`true`, `tru`, `truex`, `false`, `null`, `nul`,
	`{}`, `{ }`, `{"a":1}`, `{"a":1,}`, `{"a" 1}`, `{a:1}`, `{"a":1 "b":2}`, `{"a":{"b":[1,2,{"c":null}]}}`,
	`[]`, `[1,]`, `[,1]`, `[1 2]`, `[[[]]]`, `[1,[2,[3]]]`, `["[[[", {"{{":"]]"}]`,
	` {"text":"hello"} `, "\n[1]\r\n", `1 2`, `{}{}`, `"a"x`,
	strings.Repeat("[", 64) + strings.Repeat("]", 64),
	strings.Repeat("[", 65) + strings.Repeat("]", 65),
	strings.Repeat("[", 10000) + strings.Repeat("]", 10000),
	strings.Repeat("[", 10001) + strings.Repeat("]", 10001),
	strings.Repeat(`{"a":`, 10000) + "1" + strings.Repeat("}", 10000),
}

func TestMatchesEncodingJSON(t *testing.T) {
	for _, c := range cases {
		if got, want := Check([]byte(c), StdDepth) == nil, json.Valid([]byte(c)); got != want {
			t.Errorf("Check(%.40q, StdDepth) == nil is %v, encoding/json says %v", c, got, want)
		}
	}
}

func TestCheckDepth(t *testing.T) {
	tests := []struct {
		in   string
		max  int
		want error
	}{
		{`1`, 0, nil},
		{`"[[[{{{"`, 0, nil},
		{`[]`, 0, ErrTooDeep},
		{`[]`, 1, nil},
		{`{"a":[{}]}`, 3, nil},
		{`{"a":[{}]}`, 2, ErrTooDeep},
		{`[[1],[2],[3]]`, 2, nil}, // siblings do not add up
		{`[[[`, 1, ErrTooDeep},    // too deep before it is cut short
		{`x[[[`, 1, ErrSyntax},    // broken before it gets deep
		{`[1,]`, 5, ErrSyntax},
		{`[[1]] 2`, 5, ErrSyntax},
		{strings.Repeat("[", 64) + strings.Repeat("]", 64), 64, nil},
		{strings.Repeat("[", 65) + strings.Repeat("]", 65), 64, ErrTooDeep},
		{strings.Repeat(`{"a":`, 65) + "1" + strings.Repeat("}", 65), 64, ErrTooDeep},
	}
	for _, tt := range tests {
		if got := Check([]byte(tt.in), tt.max); got != tt.want {
			t.Errorf("Check(%.40q, %d) = %v, want %v", tt.in, tt.max, got, tt.want)
		}
	}
}

// depth is the nesting depth of valid JSON, as encoding/json's tokenizer
// sees it.
func depth(tb testing.TB, b []byte) int {
	dec := json.NewDecoder(bytes.NewReader(b))
	d, deepest := 0, 0
	for {
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			return deepest
		}
		if err != nil {
			tb.Fatalf("Token() on valid JSON %.40q: %v", b, err)
		}
		switch tok {
		case json.Delim('['), json.Delim('{'):
			d++
			deepest = max(deepest, d)
		case json.Delim(']'), json.Delim('}'):
			d--
		}
	}
}

// FuzzCheck holds Check to encoding/json: with StdDepth it accepts exactly
// what json.Valid accepts, and with any depth it accepts valid JSON exactly
// when it nests no deeper, refusing the rest as ErrTooDeep.
func FuzzCheck(f *testing.F) {
	for _, c := range cases {
		f.Add([]byte(c), uint8(2))
	}
	f.Fuzz(func(t *testing.T, b []byte, maxDepth uint8) {
		valid := json.Valid(b)
		if got := Check(b, StdDepth); (got == nil) != valid {
			t.Fatalf("Check(%q, StdDepth) = %v, encoding/json says valid is %v", b, got, valid)
		}
		got := Check(b, int(maxDepth))
		if !valid {
			if got == nil {
				t.Fatalf("Check(%q, %d) = nil for invalid JSON", b, maxDepth)
			}
			return
		}
		want := error(nil)
		if depth(t, b) > int(maxDepth) {
			want = ErrTooDeep
		}
		if got != want {
			t.Fatalf("Check(%q, %d) = %v, want %v (depth %d)", b, maxDepth, got, want, depth(t, b))
		}
	})
}

func BenchmarkCheck(b *testing.B) {
	p := []byte(`{"text":"` + strings.Repeat("x", 60) + `","n":12345,"ok":true,"tags":["a","b"]}`)
	b.Run("jsonvalid", func(b *testing.B) {
		b.SetBytes(int64(len(p)))
		for range b.N {
			Check(p, 64)
		}
	})
	b.Run("encoding/json", func(b *testing.B) {
		b.SetBytes(int64(len(p)))
		for range b.N {
			json.Valid(p)
		}
	})
}
