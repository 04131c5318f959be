package jsonvalid

// Value returns the length of the JSON value at the start of b, which must
// not start with white space: what follows the value is not looked at. The
// value must nest at most maxDepth levels. It returns ErrTooDeep when it
// nests deeper before any syntax error, and ErrSyntax when b does not start
// with a valid JSON value otherwise. A decoder that walks a larger document
// uses it to find, and check, a member's value in one pass.
func Value(b []byte, maxDepth int) (int, error) {
	p := parser{b: b, max: maxDepth}
	ok := p.value(0)
	switch {
	case p.deep:
		return 0, ErrTooDeep
	case !ok:
		return 0, ErrSyntax
	}
	return p.i, nil
}
