package collections

import (
	"context"
	"encoding/json"

	"github.com/plazahq/plaza/pubsub"
)

// MetadataOperation is the metadata key that carries an event's operation.
const MetadataOperation = "op"

// Publish publishes the event of one committed change: record, the
// record's state after op (for Delete, its last state before the delete),
// on the topic of collection in room, with the operation in the message's
// metadata. Call it after the change commits, and never for a failed
// write; call it in commit order (for instance under the lock that orders
// the writes) for subscribers to see the events in that order. The event
// is kept in room's history like any message.
//
// record must encode to a JSON object. Publish fails with INVALID_REQUEST
// for an invalid collection or operation, and as Room.Publish does
// otherwise.
func Publish(ctx context.Context, room *pubsub.Room, collection string, op Operation, record any, opts ...pubsub.PublishOption) (pubsub.Message, error) {
	if err := CheckCollection(collection); err != nil {
		return pubsub.Message{}, err
	}
	if op.bit() == 0 {
		return pubsub.Message{}, pubsub.Errorf(pubsub.CodeInvalidRequest, "collections: unknown operation %q", op)
	}
	data, err := json.Marshal(record)
	if err != nil {
		return pubsub.Message{}, pubsub.Errorf(pubsub.CodeInvalidPayload, "collections: record does not encode to JSON: %v", err)
	}
	if len(data) == 0 || data[0] != '{' {
		return pubsub.Message{}, pubsub.Errorf(pubsub.CodeInvalidPayload, "collections: a record must encode to a JSON object")
	}
	opts = append(opts, pubsub.Metadata(map[string]string{MetadataOperation: string(op)}))
	return room.Publish(ctx, collection, json.RawMessage(data), opts...)
}
