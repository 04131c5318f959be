package network

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/plazahq/plaza/pubsub"
)

// decodeServerFrame decodes a frame from the server, as the Go client reads
// it. A frame that encoding/json cannot decode in one go (a message nested
// deeper than it allows, a member of the wrong type) is taken apart member by
// member and message by message, so that a message the client cannot decode
// costs nothing but itself: it comes back with Err set, an INVALID_PAYLOAD
// *pubsub.Error, and whatever else of it could be read. The error is for the
// frame as a whole: not a JSON object, or a member other than the messages
// that does not decode; f then holds what could be read, its ID perhaps.
func decodeServerFrame(data []byte) (f serverFrame, err error) {
	if json.Unmarshal(data, &f) == nil {
		return f, nil
	}
	f = serverFrame{}
	err = eachMember(data, func(name string, raw []byte) error {
		switch {
		case strings.EqualFold(name, "messages"):
			f.Messages = nil
			if string(raw) == "null" {
				return nil
			}
			f.Messages = []pubsub.Message{}
			return eachElement(raw, func(raw []byte) {
				f.Messages = append(f.Messages, decodeMessage(raw))
			})
		case strings.EqualFold(name, "message"):
			f.Message = nil
			if string(raw) != "null" {
				m := decodeMessage(raw)
				f.Message = &m
			}
			return nil
		}
		return json.Unmarshal(oneMember(name, raw), &f)
	})
	return f, err
}

// decodeMessage decodes one message of a server frame. One that does not
// decode as a whole is decoded member by member, so that its id, topic,
// sender and the rest are known even when its payload or timestamp is not;
// Err says what failed.
func decodeMessage(raw []byte) pubsub.Message {
	var m pubsub.Message
	if json.Unmarshal(raw, &m) == nil {
		return m
	}
	m = pubsub.Message{}
	var failed error
	err := eachMember(raw, func(name string, raw []byte) error {
		var err error
		if strings.EqualFold(name, "payload") {
			// Not wrapped in an object, which would add a level.
			err = json.Unmarshal(raw, &m.Payload)
		} else {
			err = json.Unmarshal(oneMember(name, raw), &m)
		}
		if err != nil && failed == nil {
			failed = fmt.Errorf("%q: %w", clip(name, 32), err)
		}
		return nil
	})
	if err == nil {
		err = failed
	}
	if err == nil {
		return m // whole, once its parts were decoded on their own
	}
	m.Err = &pubsub.Error{
		Code:    pubsub.CodeInvalidPayload,
		Message: fmt.Sprintf("network: message %v on %q from the server cannot be decoded: %v", m.ID, clip(m.Topic, 128), err),
		Err:     err,
	}
	return m
}

// oneMember returns the JSON object {name: raw}.
func oneMember(name string, raw []byte) []byte {
	b := appendString(make([]byte, 0, len(name)+len(raw)+8), name)
	b = append(append([]byte{'{'}, b...), ':')
	b = append(b, raw...)
	return append(b, '}')
}

// eachMember calls fn with the name and the raw value of each member of the
// JSON object data, in order, and stops at the first error fn returns. Unlike
// json.Unmarshal it sets no limit on nesting: a value nested deeper than
// encoding/json decodes is handed to fn as it is, for fn to refuse on its
// own.
func eachMember(data []byte, fn func(name string, raw []byte) error) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return errors.New("not a JSON object")
	}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return tokenErr(err)
		}
		name, _ := tok.(string)
		start := dec.InputOffset()
		if err := skipValue(dec); err != nil {
			return err
		}
		if err := fn(name, trimValue(data[start:dec.InputOffset()])); err != nil {
			return err
		}
	}
	return end(dec)
}

// eachElement calls fn with each element of the JSON array data, in order,
// with no limit on nesting.
func eachElement(data []byte, fn func(raw []byte)) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('[') {
		return errors.New("not a JSON array")
	}
	for dec.More() {
		start := dec.InputOffset()
		if err := skipValue(dec); err != nil {
			return err
		}
		fn(trimValue(data[start:dec.InputOffset()]))
	}
	return end(dec)
}

// end reads the closing delimiter of the object or array dec is in, and
// checks that nothing follows it.
func end(dec *json.Decoder) error {
	if _, err := dec.Token(); err != nil {
		return tokenErr(err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return errors.New("data after the JSON value")
	}
	return nil
}

// skipValue reads the next value from dec, token by token: dec's tokenizer,
// unlike its Decode, has no limit on nesting.
func skipValue(dec *json.Decoder) error {
	depth := 0
	for {
		tok, err := dec.Token()
		if err != nil {
			return tokenErr(err)
		}
		switch tok {
		case json.Delim('['), json.Delim('{'):
			depth++
		case json.Delim(']'), json.Delim('}'):
			depth--
		}
		if depth == 0 {
			return nil
		}
	}
}

// tokenErr is err from json.Decoder.Token in the middle of a value, where
// the end of the data is unexpected.
func tokenErr(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// trimValue cuts what may precede and follow a value that a json.Decoder's
// InputOffset brackets: white space, and the ':' or ',' before it.
func trimValue(b []byte) []byte {
	return bytes.TrimRight(bytes.TrimLeft(b, " \t\r\n:,"), " \t\r\n")
}
