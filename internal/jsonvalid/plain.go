package jsonvalid

import (
	"encoding/binary"
	"math/bits"
)

// Plain returns the length of the longest prefix of b that holds no byte a
// JSON string treats specially: no quote, no backslash, no control
// character (below 0x20) and no byte of a multi-byte UTF-8 sequence (0x80
// and above). Inside a string such a run needs no further look, so a
// scanner skips it at once: Plain tests eight bytes at a time.
func Plain(b []byte) int {
	const (
		ones  = 0x0101010101010101
		highs = 0x8080808080808080
	)
	i := 0
	for ; len(b)-i >= 8; i += 8 {
		x := binary.LittleEndian.Uint64(b[i:])
		// A byte's high bit is set in m when the byte is special. The
		// subtractions borrow only out of a byte that matches, so every
		// byte below the first special one is exact, and that is all the
		// lowest set bit depends on.
		q := x ^ (ones * '"')
		s := x ^ (ones * '\\')
		m := (q - ones) &^ q
		m |= (s - ones) &^ s
		m |= (x - ones*0x20) &^ x
		m = (m | x) & highs
		if m != 0 {
			return i + bits.TrailingZeros64(m)/8
		}
	}
	for ; i < len(b); i++ {
		if c := b[i]; c == '"' || c == '\\' || c < 0x20 || c >= 0x80 {
			break
		}
	}
	return i
}
