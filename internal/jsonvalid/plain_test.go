package jsonvalid

import "testing"

// plainBytewise is Plain one byte at a time, as its doc says it behaves.
func plainBytewise(b []byte) int {
	for i, c := range b {
		if c == '"' || c == '\\' || c < 0x20 || c >= 0x80 {
			return i
		}
	}
	return len(b)
}

func TestPlain(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want int
	}{
		{"empty", "", 0},
		{"short plain", "abc", 3},
		{"long plain", "abcdefghijklmnopqrstuvwxyz0123456789", 36},
		{"quote first", `"abcdefghij`, 0},
		{"quote in the second word", `abcdefghij"klm`, 10},
		{"backslash", `abcdefgh\ijklmnop`, 8},
		{"control", "abcdefg\x1fhijk", 7},
		{"tab", "abcdefghijklmno\t", 15},
		{"utf-8", "abcdefghé", 8},
		{"0x7f is plain", "abcdefgh\x7fxyz", 12},
		{"0x20 is plain", "        ", 8},
		{"match below a borrow", "\x00\x01\x00\"abcd", 0},
		{"every special class in one word", "ab\"\\\x01\x80cd", 2},
		{"tail after full words", "abcdefghijklmno\"", 15},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Plain([]byte(tt.in)); got != tt.want {
				t.Errorf("Plain(%q) = %d, want %d", tt.in, got, tt.want)
			}
		})
	}
	// Every byte value at every position of a 17-byte run of 'a'.
	b := make([]byte, 17)
	for pos := range b {
		for c := range 256 {
			for i := range b {
				b[i] = 'a'
			}
			b[pos] = byte(c)
			if got, want := Plain(b), plainBytewise(b); got != want {
				t.Fatalf("Plain(%q) = %d, want %d", b, got, want)
			}
		}
	}
}

func FuzzPlain(f *testing.F) {
	for _, s := range []string{"", "abcdefgh", `{"t":1,"pad":"xxxxxxxxxxxxxxxx"}`, "héllo wörld, plain", "a\\b\"c\x00d\x7fe\xffend"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if got, want := Plain(b), plainBytewise(b); got != want {
			t.Fatalf("Plain(%q) = %d, want %d", b, got, want)
		}
	})
}
