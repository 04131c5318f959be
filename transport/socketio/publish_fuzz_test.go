package socketio

import (
	"encoding/json"
	"testing"

	"github.com/plazahq/plaza/pubsub"
)

// FuzzDecodePublishBody checks that any body either decodes to a channel,
// an event and data the hub and every Socket.IO client accept, or fails
// with a typed error and a message; never a panic. The seed corpus in
// testdata/fuzz runs as a normal test.
func FuzzDecodePublishBody(f *testing.F) {
	for _, s := range []string{
		seedBody,
		`{"channel":"orders.42","event":"order.updated"}`,
		`{"channel":"orders.42","event":"order.updated","data":null}`,
		`{"channel":"orders.42","event":"order.updated","data":"text","extra":[1,2,3]}`,
		`{"channel":"a","event":"é","data":{"nested":[{"x":1}]}}`,
		`{"channel":"a","channel":"b","event":"e"}`,
		`[]`, `null`, `"string"`, `{}`, `{"channel":1}`, `{"channel":"a","event":{}}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		p, err := decodePublishBody(body)
		if err != nil {
			if err.Code == "" || err.Message == "" {
				t.Fatalf("decodePublishBody(%q) = error %#v without a code or message", body, err)
			}
			return
		}
		if e := pubsub.CheckTopic(p.Channel); e != nil {
			t.Fatalf("decodePublishBody(%q) accepted channel %q: %v", body, p.Channel, e)
		}
		if e := checkEvent(p.Event); e != nil {
			t.Fatalf("decodePublishBody(%q) accepted event %q: %v", body, p.Event, e)
		}
		if e := pubsub.CheckPayload(p.Data); e != nil {
			t.Fatalf("decodePublishBody(%q) accepted data %q: %v", body, p.Data, e)
		}
		var back struct {
			Channel string `json:"channel"`
			Event   string `json:"event"`
		}
		if e := json.Unmarshal(body, &back); e != nil || back.Channel != p.Channel || back.Event != p.Event {
			t.Fatalf("decodePublishBody(%q) = %q, %q; encoding/json reads %q, %q (%v)", body, p.Channel, p.Event, back.Channel, back.Event, e)
		}
		if _, e := json.Marshal([]any{p.Event, json.RawMessage(p.Data)}); e != nil {
			t.Fatalf("the event of %q cannot be encoded for Socket.IO: %v", body, e)
		}
	})
}
