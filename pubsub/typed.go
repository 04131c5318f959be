package pubsub

import (
	"context"
	"encoding/json"
)

// Decode unmarshals m's payload into a T. It fails with INVALID_PAYLOAD when
// the payload does not fit T.
func Decode[T any](m Message) (T, error) {
	var v T
	if err := json.Unmarshal(m.Payload, &v); err != nil {
		return v, &Error{Code: CodeInvalidPayload, Message: "decoding payload of message " + m.ID.String() + " on " + m.Topic + ": " + err.Error(), Err: err}
	}
	return v, nil
}

// Subscribe is Room.Subscribe with a typed handler: each payload is decoded
// into a T first. A message whose payload does not decode is not handed to
// the handler; its error goes to JoinOptions.OnError.
func Subscribe[T any](ctx context.Context, r *Room, topicName string, handler func(Message, T), opts ...SubscribeOption) (*Subscription, error) {
	if handler == nil {
		return nil, Errorf(CodeInvalidRequest, "nil handler")
	}
	return r.Subscribe(ctx, topicName, func(m Message) {
		v, err := Decode[T](m)
		if err != nil {
			r.report(err)
			return
		}
		handler(m, v)
	}, opts...)
}
