// Package jsonvalid checks that bytes are one valid JSON value nested no
// deeper than a limit. It accepts what encoding/json.Valid accepts, several
// times faster: every publish is checked on both sides of a transport, so the
// check is on the hot path.
//
// [Check] with a depth of [StdDepth] accepts exactly what encoding/json.Valid
// accepts (the fuzz test holds it to that), including strings with invalid
// UTF-8, which encoding/json replaces when decoding. With a smaller depth it
// also refuses values whose arrays and objects nest deeper: package pubsub
// checks payloads with pubsub.MaxPayloadDepth, so that a payload wrapped in
// any of Plaza's envelopes stays far below the limit of every decoder.
//
// The parser recurses once per level of nesting, so the depth also bounds its
// stack.
package jsonvalid

import "errors"

// StdDepth is encoding/json's limit on nesting: with it, Check accepts what
// json.Valid accepts.
const StdDepth = 10000

// The errors Check returns.
var (
	ErrSyntax  = errors.New("jsonvalid: not one valid JSON value")
	ErrTooDeep = errors.New("jsonvalid: arrays and objects nested too deeply")
)

// Check returns nil if b is exactly one JSON value, with optional white space
// around it, whose arrays and objects nest at most maxDepth levels: a scalar
// has depth 0, [] and {} depth 1, [{"a":[]}] depth 3. It returns ErrTooDeep
// when b nests deeper than maxDepth before any syntax error, and ErrSyntax
// when b is not valid JSON otherwise.
func Check(b []byte, maxDepth int) error {
	p := parser{b: b, max: maxDepth}
	p.ws()
	ok := p.value(0)
	switch {
	case p.deep:
		return ErrTooDeep
	case !ok:
		return ErrSyntax
	}
	p.ws()
	if p.i != len(b) {
		return ErrSyntax
	}
	return nil
}

type parser struct {
	b    []byte
	i    int
	max  int  // deepest nesting allowed
	deep bool // set when the value nests deeper than max
}

func (p *parser) ws() {
	for p.i < len(p.b) {
		switch p.b[p.i] {
		case ' ', '\t', '\n', '\r':
			p.i++
		default:
			return
		}
	}
}

func (p *parser) value(depth int) bool {
	if p.i >= len(p.b) {
		return false
	}
	switch c := p.b[p.i]; {
	case c == '"':
		return p.str()
	case c == '{':
		return p.object(depth + 1)
	case c == '[':
		return p.array(depth + 1)
	case c == '-' || ('0' <= c && c <= '9'):
		return p.number()
	case c == 't':
		return p.lit("true")
	case c == 'f':
		return p.lit("false")
	case c == 'n':
		return p.lit("null")
	}
	return false
}

func (p *parser) lit(s string) bool {
	if len(p.b)-p.i < len(s) || string(p.b[p.i:p.i+len(s)]) != s {
		return false
	}
	p.i += len(s)
	return true
}

func (p *parser) object(depth int) bool {
	if depth > p.max {
		p.deep = true
		return false
	}
	p.i++ // {
	p.ws()
	if p.i < len(p.b) && p.b[p.i] == '}' {
		p.i++
		return true
	}
	for {
		if p.i >= len(p.b) || p.b[p.i] != '"' || !p.str() {
			return false
		}
		p.ws()
		if p.i >= len(p.b) || p.b[p.i] != ':' {
			return false
		}
		p.i++
		p.ws()
		if !p.value(depth) {
			return false
		}
		p.ws()
		if p.i >= len(p.b) {
			return false
		}
		switch p.b[p.i] {
		case ',':
			p.i++
			p.ws()
		case '}':
			p.i++
			return true
		default:
			return false
		}
	}
}

func (p *parser) array(depth int) bool {
	if depth > p.max {
		p.deep = true
		return false
	}
	p.i++ // [
	p.ws()
	if p.i < len(p.b) && p.b[p.i] == ']' {
		p.i++
		return true
	}
	for {
		if !p.value(depth) {
			return false
		}
		p.ws()
		if p.i >= len(p.b) {
			return false
		}
		switch p.b[p.i] {
		case ',':
			p.i++
			p.ws()
		case ']':
			p.i++
			return true
		default:
			return false
		}
	}
}

func (p *parser) str() bool {
	b := p.b
	i := p.i + 1 // opening quote
	for i < len(b) {
		i += Plain(b[i:])
		if i >= len(b) {
			break
		}
		c := b[i]
		switch {
		case c == '"':
			p.i = i + 1
			return true
		case c == '\\':
			i++
			if i >= len(b) {
				return false
			}
			switch b[i] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i++
			case 'u':
				if len(b)-i < 5 {
					return false
				}
				for _, h := range b[i+1 : i+5] {
					if !isHex(h) {
						return false
					}
				}
				i += 5
			default:
				return false
			}
		case c < 0x20:
			return false
		default:
			i++
		}
	}
	return false
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func (p *parser) number() bool {
	b, i := p.b, p.i
	if b[i] == '-' {
		i++
	}
	switch {
	case i >= len(b):
		return false
	case b[i] == '0':
		i++
	case '1' <= b[i] && b[i] <= '9':
		for i < len(b) && isDigit(b[i]) {
			i++
		}
	default:
		return false
	}
	if i < len(b) && b[i] == '.' {
		i++
		if i >= len(b) || !isDigit(b[i]) {
			return false
		}
		for i < len(b) && isDigit(b[i]) {
			i++
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		if i >= len(b) || !isDigit(b[i]) {
			return false
		}
		for i < len(b) && isDigit(b[i]) {
			i++
		}
	}
	p.i = i
	return true
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }
